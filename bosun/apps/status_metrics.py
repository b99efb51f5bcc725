"""Each service's `status()` as Prometheus gauges (bosun.runtime.telemetry declares them):
the composition root knows what each actor's status holds and which clients the config has,
so that a client with nothing open still shows a 0 instead of no series at all."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from bosun.apps.config import Config
from bosun.runtime import telemetry as t

Export = Callable[[dict[str, Any]], None]


def _trading(service: str, status: dict[str, Any]) -> None:
    t.TRADING_ENABLED.labels(service).set(1 if status["trading_enabled"] else 0)


SCOPE_LEVEL = {"active": 0, "reducing": 1, "halted": 2}


def _risk() -> Export:
    counted: dict[str, int] = {}
    restricted: set[str] = set()  # scopes shown not active: back to 0 when they leave status

    def export(status: dict[str, Any]) -> None:
        _trading("risk", status)
        scopes = status.get("scopes", {})
        for scope in restricted - scopes.keys():
            t.SCOPE_STATE.labels(scope).set(0)
        for scope, state in scopes.items():
            t.SCOPE_STATE.labels(scope).set(SCOPE_LEVEL[state])
        restricted.clear()
        restricted.update(scopes)
        for each in status["limits"].values():  # a limit that never refused shows 0, not no series
            for limit in each:
                t.BREACHES.labels(limit)
        for limit, n in status["breaches_by_limit"].items():  # totals since start: add what is new
            t.BREACHES.labels(limit).inc(n - counted.get(limit, 0))
            counted[limit] = n
    return export


def _execution(clients: list[str]) -> Export:
    def export(status: dict[str, Any]) -> None:
        _trading("execution", status)
        per_client = dict.fromkeys(clients, 0)
        for order in status["open_orders"].values():
            per_client[order["client"]] = per_client.get(order["client"], 0) + 1
        for client, n in per_client.items():
            t.OPEN_ORDERS.labels(client).set(n)
    return export


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
        t.EQUITY_TOTAL.set(float(status["equity_total"]))
    return export


def exporter(service: str, cfg: Config) -> Export | None:
    """What turns `service`'s status into gauges; None for a service whose status has none."""
    clients = [c.id for c in cfg.clients]
    match service:
        case "risk":
            return _risk()
        case "execution":
            return _execution(clients)
        case "ingest":
            return _ingest
        case "portfolio":
            return _portfolio()
    return None
