"""The Grafana dashboards of infra/grafana: the generator (build.py, not a package) and every
panel query of the committed JSON."""

from __future__ import annotations

import importlib.util
import json
import re
from types import ModuleType

from tests.infra import INFRA

DASHBOARDS = INFRA / "grafana" / "dashboards"
# Grafana's variables, as a test run against a real Prometheus gives them
VARIABLES = {"$__rate_interval": "1m", "$client": ".+"}


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("grafana_build", INFRA / "grafana" / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def queries() -> list[tuple[str, str, str]]:
    """(dashboard, panel title, PromQL) for every target of every committed dashboard."""
    found = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets") or ():
                found.append((path.stem, panel["title"], target["expr"]))
    return found


def concrete(expr: str) -> str:
    return re.sub(r"\$\w+", lambda m: VARIABLES[m.group(0)], expr)
