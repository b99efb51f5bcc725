"""Only execution may import ccxt: the exchange simulator is ccxt's counterpart, never its user."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PRODUCTION = ("proto", "bosun", "services")


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            roots.add(node.module.split(".")[0])
    return roots


def test_only_execution_imports_ccxt() -> None:
    offenders = [str(path.relative_to(REPO)) for top in PRODUCTION for path in (REPO / top).rglob("*.py")
                 if "ccxt" in imported_roots(path) and not path.is_relative_to(REPO / "services" / "execution")]
    assert offenders == []


def test_the_simulator_runs_without_ccxt_loaded() -> None:
    code = ("import sys, bosun.apps.cli, bosun.apps.exchange_sim.server; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'ccxt'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"
