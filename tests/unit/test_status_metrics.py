"""Each service's status() as gauges: values, a 0 for a configured client with nothing open,
and breach totals that only grow."""

from __future__ import annotations

from prometheus_client import REGISTRY

from bosun.apps.config import ClientConfig, Config
from bosun.apps.status_metrics import exporter

CFG = Config(clients=[ClientConfig(id="alice", strategies=[]), ClientConfig(id="bob", strategies=[])], strategies=[])


def value(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_execution_counts_open_orders_per_client_and_shows_zero_for_the_others() -> None:
    order = {"client": "alice", "venue": "binance", "symbol": "BTCUSDT", "side": "buy", "type": "limit",
             "remaining": "0.01", "reason": "entry"}
    exporter("execution", CFG)({"trading_enabled": False, "open_orders": {"a-1": order, "a-2": order}})
    assert value("bosun_open_orders", client="alice") == 2
    assert value("bosun_open_orders", client="bob") == 0
    assert value("bosun_trading_enabled", service="execution") == 0


def test_risk_breaches_grow_by_what_is_new_and_trading_state_follows() -> None:
    export = exporter("risk", CFG)
    limits = {"alice": {"max_position": "0.05", "price_band_pct": "5%"}}
    before = value("bosun_risk_breaches_total", limit="max_position") or 0
    export({"trading_enabled": True, "limits": limits, "breaches_by_limit": {"max_position": 2}})
    export({"trading_enabled": True, "limits": limits, "breaches_by_limit": {"max_position": 5}})
    assert value("bosun_risk_breaches_total", limit="max_position") == before + 5
    assert value("bosun_risk_breaches_total", limit="price_band_pct") is not None
    assert value("bosun_trading_enabled", service="risk") == 1


def test_risk_shows_each_scope_not_active_and_a_resumed_one_as_zero() -> None:
    export = exporter("risk", CFG)
    status = {"trading_enabled": True, "limits": {}, "breaches_by_limit": {}}
    export({**status, "scopes": {"market.alice.binance.BTCUSDT": "halted", "client.bob": "reducing"}})
    assert value("bosun_scope_state", scope="market.alice.binance.BTCUSDT") == 2
    assert value("bosun_scope_state", scope="client.bob") == 1
    export({**status, "scopes": {"client.bob": "reducing"}})
    assert value("bosun_scope_state", scope="market.alice.binance.BTCUSDT") == 0


def test_portfolio_positions_equity_pnl_exposure_and_drawdown_per_client() -> None:
    export = exporter("portfolio", CFG)
    position = {"client": "alice", "venue": "binance", "symbol": "BTCUSDT", "qty": "-0.02",
                "realized_pnl": "12.5", "unrealized_pnl": "-3", "mark": "60000"}
    export({"positions": [position], "equity": {"alice": "10009.5", "bob": "10000"}})
    assert value("bosun_position", client="alice", market="binance.BTCUSDT") == -0.02
    assert value("bosun_equity", client="alice") == 10009.5
    assert value("bosun_pnl", client="alice", kind="realized") == 12.5
    assert value("bosun_pnl", client="alice", kind="unrealized") == -3
    assert value("bosun_pnl", client="bob", kind="realized") == 0
    assert value("bosun_exposure", client="alice", kind="gross") == 1200
    assert value("bosun_exposure", client="alice", kind="net") == -1200
    assert value("bosun_exposure", client="bob", kind="gross") == 0
    assert value("bosun_drawdown", client="alice") == 0
    export({"positions": [position], "equity": {"alice": "10000", "bob": "10000"}})
    assert value("bosun_drawdown", client="alice") == 9.5  # below its peak of 10009.5


def test_ingest_gives_the_last_price_time_per_market_in_seconds() -> None:
    exporter("ingest", CFG)({"binance.BTCUSDT": {"price": "60000", "ts_event": 1_727_751_600_000_000_000}})
    assert value("bosun_price_event_timestamp_seconds", market="binance.BTCUSDT") == 1_727_751_600


def test_signal_and_alerts_have_no_state_gauges() -> None:
    assert exporter("signal", CFG) is None and exporter("alerts", CFG) is None
