"""Each service's status() as gauges: values, a 0 for a configured client with nothing open,
and breach totals that only grow."""

from __future__ import annotations

from prometheus_client import REGISTRY

from decimal import Decimal as D

from bosun.apps.config import ClientConfig, Config
from bosun.apps.status_metrics import exporter
from bosun.runtime.clock import SimClock
from bosun.runtime.inproc import InProcessBus
from proto.events import FundingRateSettled, OrderFilled, PriceSnapshot
from services.portfolio.actor import PortfolioActor

CFG = Config(clients=[ClientConfig(id="alice", strategies=[]), ClientConfig(id="bob", strategies=[])], strategies=[])


def value(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_execution_counts_open_orders_per_client_and_shows_zero_for_the_others() -> None:
    order = {"client": "alice", "venue": "binance", "symbol": "BTCUSDT", "side": "buy", "type": "limit",
             "remaining": "0.01", "reason": "entry"}
    exporter("execution", CFG)({"trading_enabled": False, "open_orders": {"a-1": order, "a-2": order},
                                "fills_by_client": {}, "rejects_by_client": {}})
    assert value("bosun_open_orders", client="alice") == 2
    assert value("bosun_open_orders", client="bob") == 0
    assert value("bosun_trading_enabled", service="execution") == 0


def test_execution_fills_and_rejects_grow_by_what_is_new_per_client() -> None:
    export = exporter("execution", CFG)
    before = {name: value(name, client="alice") or 0 for name in ("bosun_fills_total", "bosun_order_rejects_total")}
    status = {"trading_enabled": True, "open_orders": {}}
    export({**status, "fills_by_client": {"alice": 3}, "rejects_by_client": {}})
    export({**status, "fills_by_client": {"alice": 7}, "rejects_by_client": {"alice": 1}})
    assert value("bosun_fills_total", client="alice") == before["bosun_fills_total"] + 7
    assert value("bosun_order_rejects_total", client="alice") == before["bosun_order_rejects_total"] + 1
    assert value("bosun_order_rejects_total", client="bob") is not None  # a configured client: 0, not no series


def test_risk_breaches_grow_by_what_is_new_and_trading_state_follows() -> None:
    export = exporter("risk", CFG)
    limits = {"alice": {"max_position": "0.05", "price_band_pct": "5%"}}
    before = value("bosun_risk_breaches_total", limit="max_position") or 0
    export({"trading_enabled": True, "limits": limits, "breaches_by_limit": {"max_position": 2}})
    export({"trading_enabled": True, "limits": limits, "breaches_by_limit": {"max_position": 5}})
    assert value("bosun_risk_breaches_total", limit="max_position") == before + 5
    assert value("bosun_risk_breaches_total", limit="price_band_pct") is not None
    assert value("bosun_trading_enabled", service="risk") == 1


def test_risk_shows_every_scope_with_a_state_and_a_resumed_one_as_zero() -> None:
    export = exporter("risk", CFG)
    status = {"trading_enabled": True, "limits": {}, "breaches_by_limit": {}}
    export({**status, "scopes": {}})  # nothing restricted: the global scope and each client's, active
    assert value("bosun_scope_state", scope="global", client="") == 0
    assert value("bosun_scope_state", scope="client.alice", client="alice") == 0
    assert value("bosun_scope_state", scope="client.bob", client="bob") == 0
    export({**status, "scopes": {"market.alice.binance.BTCUSDT": "halted", "client.bob": "reducing"}})
    assert value("bosun_scope_state", scope="market.alice.binance.BTCUSDT", client="alice") == 2
    assert value("bosun_scope_state", scope="client.bob", client="bob") == 1
    export({**status, "scopes": {"client.bob": "reducing"}})
    assert value("bosun_scope_state", scope="market.alice.binance.BTCUSDT", client="alice") == 0
    export({**status, "trading_enabled": False, "scopes": {"global": "reducing"}})  # the kill switch off
    assert value("bosun_scope_state", scope="global", client="") == 2
    assert value("bosun_scope_state", scope="client.bob", client="bob") == 0


def test_portfolio_positions_equity_pnl_exposure_and_drawdown_per_client() -> None:
    bus = InProcessBus()
    bus.on_effect(lambda effect: None)
    clock = SimClock(10**18)
    actor = bus.attach(PortfolioActor(clock, bus, CFG.portfolio_config()))
    bus.publish(OrderFilled(id="f1", ts_event=1, client_order_id="o1", client="alice", venue="binance",
                            symbol="BTCUSDT", side="sell", qty=D("0.02"), price=D(60150), fee=D("0.5")))
    bus.publish(PriceSnapshot(id="p", ts_event=10**18, venue="binance", symbol="BTCUSDT", price=D(60000)))
    bus.publish(OrderFilled(id="f2", ts_event=2, client_order_id="o2", client="alice", venue="binance_usdm",
                            symbol="ETHUSDT", side="buy", qty=D(1), price=D(2000), fee=D(0)))
    bus.publish(FundingRateSettled(id="f", ts_event=3, venue="binance_usdm", symbol="ETHUSDT", rate=D("0.001")))
    bus.drain()
    export = exporter("portfolio", CFG)
    export(actor.status())
    assert value("bosun_position", client="alice", market="binance.BTCUSDT") == -0.02
    assert value("bosun_equity", client="alice") == 10000 - 0.5 - 2 + 3  # fee, funding, (60150 - 60000) x 0.02
    assert value("bosun_pnl", client="alice", kind="realized") == -2.5
    assert value("bosun_pnl", client="alice", kind="unrealized") == 3
    assert value("bosun_funding_paid", client="alice") == 2
    assert value("bosun_pnl", client="bob", kind="realized") == 0
    assert value("bosun_exposure", client="alice", kind="gross") == 1200 + 2000
    assert value("bosun_exposure", client="alice", kind="net") == -1200 + 2000
    assert value("bosun_exposure", client="bob", kind="gross") == 0
    assert value("bosun_unmarked_markets", client="alice") == 1  # ETHUSDT has no price: marked at its fill
    assert value("bosun_equity", client="bob") == 10000  # every client together: sum(bosun_equity)
    assert value("bosun_drawdown", client="alice") == 0
    bus.publish(PriceSnapshot(id="p2", ts_event=10**18, venue="binance", symbol="BTCUSDT", price=D(60475)))
    bus.drain()
    export(actor.status())
    assert value("bosun_drawdown", client="alice") == 9.5  # below its peak: (60475 - 60000) x 0.02


def test_ingest_gives_the_last_price_time_per_market_in_seconds() -> None:
    exporter("ingest", CFG)({"binance.BTCUSDT": {"price": "60000", "ts_event": 1_727_751_600_000_000_000}})
    assert value("bosun_price_event_timestamp_seconds", market="binance.BTCUSDT") == 1_727_751_600


def test_signal_and_alerts_have_no_state_gauges() -> None:
    assert exporter("signal", CFG) is None and exporter("alerts", CFG) is None
