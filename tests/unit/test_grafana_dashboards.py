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


def on(dashboard: str) -> str:
    return " ".join(expr for d, _, expr in queries() if d == dashboard)


def test_the_overview_answers_am_i_safe() -> None:
    # trading state (per scope too), staleness, open orders, inventory, PnL, breaches, errors
    for metric in ("bosun_trading_enabled", "bosun_scope_state", "bosun_price_event_timestamp_seconds",
                   "bosun_open_orders", "bosun_position", "bosun_pnl", "bosun_risk_breaches_total",
                   "bosun_dead_letters_total", "bosun_fills_total", "bosun_order_rejects_total"):
        assert metric in on("overview"), metric


def test_the_services_dashboard_shows_latency_and_lag_per_service() -> None:
    for metric in ("bosun_handler_seconds_bucket", "bosun_consumer_pending_messages",
                   "bosun_consumer_ack_pending_messages", "bosun_nats_reconnects_total", "bosun_messages_in_total"):
        assert metric in on("services"), metric


def test_the_clients_dashboard_shows_each_clients_performance() -> None:
    for metric in ("bosun_equity", "bosun_pnl", "bosun_drawdown", "bosun_exposure", "bosun_fills_total",
                   "bosun_scope_state"):
        assert re.search(rf"\b{metric}\{{client=~\"\$client\"\}}", on("clients")), metric
