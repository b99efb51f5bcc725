"""The deployment files of infra/ as data, for the tests that check them against each other."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import hcl2
import msgspec
import yaml

REPO = Path(__file__).resolve().parent.parent
INFRA = REPO / "infra"
SERVICES = ("ingest", "signal", "risk", "execution", "portfolio", "alerts")
NOMAD_JOBS = ("bosun", "nats", "postgres")


def compose() -> dict[str, Any]:
    return yaml.safe_load((INFRA / "compose.yaml").read_text())


def bosun_toml() -> dict[str, Any]:
    return msgspec.toml.decode((INFRA / "bosun.toml").read_bytes())


def metrics_ports() -> dict[str, int]:
    """Service -> the metrics port infra/bosun.toml gives it."""
    return {name: s["metrics_port"] for name, s in bosun_toml()["services"].items()}


def unquote(value: Any) -> Any:
    """python-hcl2 keeps HCL's quotes on strings and block labels."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    if isinstance(value, list):
        return [unquote(v) for v in value]
    if isinstance(value, dict):
        return {unquote(k): unquote(v) for k, v in value.items() if k != "__is_block__"}
    return value


def nomad_groups() -> dict[str, dict[str, Any]]:
    """Group name -> its body, over the three job files."""
    groups: dict[str, dict[str, Any]] = {}
    for job in NOMAD_JOBS:
        parsed = unquote(hcl2.load((INFRA / "nomad" / f"{job}.nomad.hcl").open()))
        for body in parsed["job"][0].values():
            for group in body["group"]:
                groups.update(group)
    return groups


def nomad_text() -> str:
    return "\n".join((INFRA / "nomad" / f"{job}.nomad.hcl").read_text() for job in NOMAD_JOBS)


def port_of(url: str) -> int:
    match = re.search(r":(\d+)/", url)
    assert match, f"no port in {url!r}"
    return int(match.group(1))
