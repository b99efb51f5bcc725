"""`bosun status --watch`'s view, rendered to text: what an operator sees."""

from __future__ import annotations

from rich.console import Console

from bosun.apps.status_view import view

STATUS = {
    "trading_enabled": True,
    "prices": [{"key": "binance.BTCUSDT", "price": "61415.99", "time": "2024-10-04T14:20:00Z", "age_s": 2.0},
               {"key": "binance.ETHUSDT", "price": "2400.5", "time": "2024-10-04T14:19:00Z", "age_s": 90.0}],
    "risk": {"approved": 12, "breached": 2, "breaches_by_limit": {"max_position": 2},
             "limits": {"demo": {"max_position": "0.05 BTC per market"}}},
    "execution": {"open_orders": {"t7-1": {"client": "demo", "venue": "binance", "symbol": "BTCUSDT", "side": "buy",
                                           "type": "market", "remaining": "0.01", "reason": "signal"}},
                  "fills": 11},
    "portfolio": {"positions": [{"client": "demo", "venue": "binance", "symbol": "BTCUSDT", "qty": "0.01",
                                 "avg_price": "61000", "realized_pnl": "-1.2", "unrealized_pnl": "4.16",
                                 "fees": "0.6"}]},
}


def text(status: dict, health: dict[str, bool]) -> str:
    console = Console(width=160, record=True, color_system=None)
    console.print(view(status, health))
    return console.export_text()


def test_the_view_shows_state_health_prices_positions_orders_and_limits() -> None:
    shown = text(STATUS, {"ingest": True, "signal": True, "risk": True, "execution": True, "portfolio": True,
                          "alerts": False})
    assert "trading ON" in shown
    assert "alerts DOWN" in shown and "risk up" in shown
    assert "61415.99" in shown and "2.0s old" in shown and "90.0s old" in shown
    assert "-1.2" in shown and "4.16" in shown
    assert "open orders 1, fills 11" in shown and "t7-1" in shown
    assert "0.05 BTC per market" in shown and "max_position 2" in shown
    assert "scopes: every one active" in shown  # risk restricts none


def test_the_view_shows_each_scope_not_active_and_the_newest_breaches() -> None:
    risk = {**STATUS["risk"], "scopes": {"market.alice.binance.BTCUSDT": "halted"},
            "last_breaches": [{"at": "2026-12-06T03:00:00Z", "scope": "market.alice.binance.BTCUSDT",
                               "limit": "breaker.stale_price", "action": "halted", "detail": "3 s old"}]}
    shown = text({**STATUS, "risk": risk}, {})
    assert "market.alice.binance.BTCUSDT HALTED" in shown and "every one active" not in shown
    assert "2026-12-06T03:00:00Z market.alice.binance.BTCUSDT breaker.stale_price: 3 s old" in shown


def test_services_that_do_not_answer_are_named_not_crashed_on() -> None:
    silent = {**STATUS, "trading_enabled": None, "risk": None, "execution": None, "portfolio": None}
    shown = text(silent, {})
    assert "trading OFF (never set)" in shown
    assert "risk not answering" in shown and "execution not answering" in shown
    assert "portfolio not answering" in shown and "ingest DOWN" in shown


def test_the_view_shows_each_clients_ledger_and_what_has_no_fresh_price() -> None:
    from decimal import Decimal as D

    from bosun.apps.config import ClientConfig, Config
    from bosun.runtime.clock import SimClock
    from bosun.runtime.inproc import InProcessBus
    from proto.events import FundingRateSettled, OrderFilled
    from services.portfolio.actor import PortfolioActor

    bus = InProcessBus()
    bus.on_effect(lambda e: None)
    actor = bus.attach(PortfolioActor(SimClock(), bus, Config(clients=[ClientConfig(id="demo")]).portfolio_config()))
    bus.publish(OrderFilled(id="f", ts_event=1, client_order_id="o", client="demo", venue="binance_usdm",
                            symbol="BTCUSDT", side="buy", qty=D("0.1"), price=D(60000), fee=D("2.4")))
    bus.publish(FundingRateSettled(id="r", ts_event=2, venue="binance_usdm", symbol="BTCUSDT", rate=D("0.0001")))
    bus.drain()
    shown = text({**STATUS, "portfolio": actor.status()}, {})
    assert "equity in total 9997.0000" in shown and "0.60000 USDT" in shown
    assert "binance_usdm.BTCUSDT" in shown  # held, no price in KV: marked at its fill, and said so
