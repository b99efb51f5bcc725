"""The metrics every service exports (bosun.runtime.telemetry): each one issue 13 lists is there
with the labels it is read by, and every name follows Prometheus' conventions: the `bosun_`
prefix, `_total` on counters, base units named as suffixes (`_seconds`, `_messages`), labels
bounded by the config (no order id, no subject)."""

from __future__ import annotations

import re

from prometheus_client.metrics import MetricWrapperBase

from bosun.runtime import telemetry

# what the operators read -> (type, labels)
LISTED = {
    "bosun_handler_seconds": ("histogram", ("service", "input")),  # handler latency
    "bosun_consumer_pending_messages": ("gauge", ("service", "input")),
    "bosun_consumer_ack_pending_messages": ("gauge", ("service", "input")),
    "bosun_price_event_timestamp_seconds": ("gauge", ("market",)),  # staleness: time() minus it
    "bosun_nats_reconnects": ("counter", ("service",)),
    "bosun_open_orders": ("gauge", ("client",)),
    "bosun_fills": ("counter", ("client",)),
    "bosun_order_rejects": ("counter", ("client",)),
    "bosun_risk_breaches": ("counter", ("limit",)),
    "bosun_scope_state": ("gauge", ("scope", "client")),  # trading state per scope
    "bosun_equity": ("gauge", ("client",)),
    "bosun_pnl": ("gauge", ("client", "kind")),
    "bosun_drawdown": ("gauge", ("client",)),
    "bosun_exposure": ("gauge", ("client", "kind")),
}
# labels whose values grow without bound: one series each would swamp Prometheus
UNBOUNDED = {"subject", "order_id", "client_order_id", "id", "target_id", "trace_id", "price"}
TIME_UNITS = re.compile(r"_(ms|millis|milliseconds|us|micros|ns|nanos|minutes|hours|days)(_|$)")


def metrics() -> dict[str, MetricWrapperBase]:
    return {m._name: m for m in vars(telemetry).values() if isinstance(m, MetricWrapperBase)}


def test_every_metric_issue_13_lists_is_exported_with_its_labels() -> None:
    exported = metrics()
    for name, (kind, labels) in LISTED.items():
        assert name in exported, f"{name} is exported by no service"
        assert (exported[name]._type, exported[name]._labelnames) == (kind, labels), name


def test_names_and_labels_follow_prometheus_conventions() -> None:
    for name, metric in metrics().items():
        assert re.fullmatch(r"bosun_[a-z][a-z0-9_]*[a-z0-9]", name), name
        assert not name.endswith("_total"), f"{name}: prometheus_client adds _total to a counter itself"
        assert not TIME_UNITS.search(name), f"{name}: times in seconds, the base unit"
        if metric._type == "histogram":  # every histogram here is a duration
            assert name.endswith("_seconds"), name
        if "timestamp" in name:
            assert name.endswith("_timestamp_seconds"), name
        for label in metric._labelnames:
            assert re.fullmatch(r"[a-z][a-z_]*", label) and label not in UNBOUNDED, f"{name}: label {label}"
        assert metric._documentation, f"{name} has no help text"


def test_counters_are_exposed_with_total() -> None:
    from prometheus_client import CollectorRegistry, Counter, generate_latest

    registry = CollectorRegistry()
    Counter(telemetry.FILLS._name, telemetry.FILLS._documentation, ["client"], registry=registry).labels("a").inc()
    assert b"bosun_fills_total{client=\"a\"} 1.0" in generate_latest(registry)
