"""Each service's `status()` as Prometheus gauges (bosun.runtime.telemetry declares them):
the composition root knows what each actor's status holds and which clients the config has,
so that a client with nothing open still shows a 0 instead of no series at all."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from prometheus_client import Counter

from bosun.apps.config import Config
from bosun.model.trading import GLOBAL, HALTED, client_scope, scope_client
from bosun.runtime import telemetry as t

Export = Callable[[dict[str, Any]], None]


def _trading(service: str, status: dict[str, Any]) -> None:
    t.TRADING_ENABLED.labels(service).set(1 if status["trading_enabled"] else 0)


SCOPE_LEVEL = {"active": 0, "reducing": 1, "halted": 2}


def _risk(clients: list[str]) -> Export:
    breaches = _counting(t.BREACHES, [])
    restricted: set[str] = set()  # scopes shown not active: back to 0 when they leave status

    def export(status: dict[str, Any]) -> None:
        _trading("risk", status)
        # The global scope and each client's always have a series (0: active), so that "am I safe"
        # shows every scope that can trade; the global one is halted too while the kill switch is off.
        levels = {scope: 0 for scope in (GLOBAL, *map(client_scope, clients))}
        levels.update(dict.fromkeys(restricted, 0))
        levels.update((scope, SCOPE_LEVEL[state]) for scope, state in status.get("scopes", {}).items())
        if not status["trading_enabled"]:
            levels[GLOBAL] = SCOPE_LEVEL[HALTED]
        for scope, level in levels.items():
            t.SCOPE_STATE.labels(scope, scope_client(scope) or "").set(level)
        restricted.clear()
        restricted.update(status.get("scopes", {}))
        for each in status["limits"].values():  # a limit that never refused shows 0, not no series
            for limit in each:
                t.BREACHES.labels(limit)
        breaches(status["breaches_by_limit"])
    return export


def _execution(clients: list[str]) -> Export:
    fills, rejects = _counting(t.FILLS, clients), _counting(t.REJECTS, clients)

    def export(status: dict[str, Any]) -> None:
        _trading("execution", status)
        per_client = dict.fromkeys(clients, 0)
        for order in status["open_orders"].values():
            per_client[order["client"]] = per_client.get(order["client"], 0) + 1
        for client, n in per_client.items():
            t.OPEN_ORDERS.labels(client).set(n)
        fills(status["fills_by_client"])
        rejects(status["rejects_by_client"])
    return export


def _counting(counter: Counter, labels: list[str]) -> Callable[[dict[str, int]], None]:
    """A counter fed the totals a status holds since the service started (rebuilt from the log on
    a restart): it grows by what is new; each of `labels` shows 0 until it counts, not no series.
    Its series appear with the first totals, not at 0 before them: a restarted service's counter
    then reads no lower than before, so Prometheus sees no reset and counts nothing twice."""
    counted: dict[str, int] = {}

    def add(totals: dict[str, int]) -> None:
        for label in labels:
            counter.labels(label)
        for label, n in totals.items():
            counter.labels(label).inc(n - counted.get(label, 0))
            counted[label] = n
    return add


def _ingest(status: dict[str, Any]) -> None:
    for market, last in status.items():
        t.PRICE_EVENT_TIME.labels(market).set(last["ts_event"] / 1e9)


def _portfolio() -> Export:
    peaks: dict[str, Decimal] = {}  # highest equity per client since the service started

    def export(status: dict[str, Any]) -> None:
        for p in status["positions"]:
            t.POSITION.labels(p["client"], f"{p['venue']}.{p['symbol']}").set(float(p["qty"]))
        # The actor's own figures per client, over every venue (services/portfolio/ledger.py).
        for client, figures in status["clients"].items():
            equity = Decimal(figures["equity"])
            peaks[client] = max(peaks.get(client, equity), equity)
            t.EQUITY.labels(client).set(float(equity))
            t.DRAWDOWN.labels(client).set(float(peaks[client] - equity))
            t.PNL.labels(client, "realized").set(float(figures["realized_pnl"]))
            t.PNL.labels(client, "unrealized").set(float(figures["unrealized_pnl"]))
            t.FUNDING.labels(client).set(float(sum(map(Decimal, figures["funding"].values()), Decimal(0))))
            t.EXPOSURE.labels(client, "gross").set(float(figures["gross_exposure"]))
            t.EXPOSURE.labels(client, "net").set(float(figures["net_exposure"]))
            t.UNMARKED.labels(client).set(len(figures["unmarked"]))
    return export


def exporter(service: str, cfg: Config) -> Export | None:
    """What turns `service`'s status into gauges; None for a service whose status has none."""
    clients = [c.id for c in cfg.clients]
    match service:
        case "risk":
            return _risk(clients)
        case "execution":
            return _execution(clients)
        case "ingest":
            return _ingest
        case "portfolio":
            return _portfolio()
    return None
