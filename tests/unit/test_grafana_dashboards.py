"""The committed dashboards are what infra/grafana/build.py produces, and they query only
metrics the services export (bosun.runtime.telemetry): a panel over a metric nobody exports
would show "No data" exactly when someone needs it."""

from __future__ import annotations

import re

from prometheus_client.metrics import MetricWrapperBase

from bosun.runtime import telemetry
from tests.dashboards import DASHBOARDS, VARIABLES, generator, queries

SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}
PROMETHEUS_OWN = {"up"}  # what Prometheus records itself for each target


def exported() -> set[str]:
    names = set()
    for metric in vars(telemetry).values():
        if isinstance(metric, MetricWrapperBase):
            names |= {metric._name + suffix for suffix in SUFFIXES[metric._type]}
    return names


def test_committed_json_is_what_the_generator_writes() -> None:
    rendered = generator().render()
    committed = {path.name: path.read_text() for path in DASHBOARDS.glob("*.json")}
    assert set(committed) == set(rendered), "run: .venv/bin/python infra/grafana/build.py"
    for name, text in rendered.items():
        assert committed[name] == text, f"{name} is stale: run .venv/bin/python infra/grafana/build.py"


def test_every_panel_queries_only_exported_metrics_and_known_variables() -> None:
    known = exported() | PROMETHEUS_OWN
    found = queries()
    assert {dashboard for dashboard, _, _ in found} == {"overview", "services", "clients"}
    for dashboard, title, expr in found:
        metrics = set(re.findall(r"\bbosun_\w+", expr)) | set(re.findall(r"\b(up)\{", expr))
        assert metrics, f"{dashboard} / {title}: no metric in {expr!r}"
        assert metrics <= known, f"{dashboard} / {title}: {metrics - known} is exported by no service"
        assert set(re.findall(r"\$\w+", expr)) <= set(VARIABLES), f"{dashboard} / {title}: {expr!r}"


def test_the_overview_answers_am_i_safe() -> None:
    overview = " ".join(expr for dashboard, _, expr in queries() if dashboard == "overview")
    for metric in ("bosun_trading_enabled", "bosun_price_event_timestamp_seconds", "bosun_open_orders",
                   "bosun_position", "bosun_pnl", "bosun_risk_breaches_total", "bosun_dead_letters_total"):
        assert metric in overview
