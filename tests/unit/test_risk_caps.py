"""The hard caps on the in-process bus: notional caps per market, per client and over every client,
open orders and order rates, daily loss and drawdown, clamp or reject, `[risk]` defaults, and
targets no limit can be checked against."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bosun.apps import config as app_config
from bosun.apps.config import ClientConfig, Config
from bosun.apps.control import render
from proto import subjects as sj
from proto.events import (OrderAccepted, OrderCanceled, OrderFilled, PositionChanged, RiskLimitBreached, SubmitOrder,
                          TargetApproved)
from services.risk.config import LimitsConfig
from tests.unit.test_risk_actor import CONFIG, S, T0, Harness, breach, fill, snapshot, target

D = Decimal
DAY = 86_400 * S


def harness(**limits: object) -> Harness:
    """Client alice with these limits (and no price age limit), trading on."""
    alice = ClientConfig(id="alice", strategies=["sma"], risk=LimitsConfig(max_price_age_s=None, **limits))
    bob = ClientConfig(id="bob", strategies=["sma"], risk=LimitsConfig(max_price_age_s=None))
    h = Harness(config=Config(clients=[alice, bob], strategies=CONFIG.strategies))
    h.enable()
    return h


def position(qty: str, avg: str, realized: str = "0", ts: int = T0, n: int = 1,
             symbol: str = "BTCUSDT") -> PositionChanged:
    return PositionChanged(id=f"p{n}", ts_event=ts, client="alice", venue="binance", symbol=symbol, qty=D(qty),
                           avg_price=D(avg), realized_pnl=D(realized), unrealized_pnl=D(0), fees=D(0),
                           fill_id=f"f{n}")


def test_a_position_notional_cap_rejects_by_default_and_clamps_when_asked() -> None:
    h = harness(max_position_notional=D(30000))
    v = h.verdict(target("0.6"))  # 0.6 x 60000 = 36000
    assert breach(v) == "max_position_notional" and v.action == "rejected" and "36000" in v.detail
    h = harness(max_position_notional=D(30000), on_breach="clamp")
    cut, approved = h.send(target("-0.6"))
    assert isinstance(cut, RiskLimitBreached) and (cut.limit, cut.action) == ("max_position_notional", "clamped")
    assert "clamped to -0.5" in cut.detail
    assert isinstance(approved, TargetApproved) and approved.target.qty == D("-0.5")
    assert approved.id == target("-0.6").id and approved.target.reason == "signal"


def test_gross_notional_counts_every_market_of_the_client_and_the_total_every_client() -> None:
    h = harness(max_gross_notional=D(40000), on_breach="clamp")
    h.send(fill("f1", "buy", "0.5"))  # 30000 in BTC
    assert isinstance(h.verdict(target("3", symbol="ETHUSDT")), TargetApproved)  # 30000 + 9000
    cut, approved = h.send(target("5", 2, symbol="ETHUSDT"))  # 30000 + 15000: only 10000 left for ETH
    assert cut.limit == "max_gross_notional" and approved.target.qty == D("3.333333333333333333333333333")  # toward 0
    assert approved.target.qty * 3000 <= 10000
    h.send(fill("f2", "sell", "0.5"))
    assert isinstance(h.verdict(target("5", 3, symbol="ETHUSDT")), TargetApproved)  # BTC flat again

    h = harness(max_total_gross_notional=D(50000))
    h.send(fill("b1", "buy", "0.5", client="bob"))  # bob's 30000 counts against alice's total cap
    assert breach(h.verdict(target("0.4"))) == "max_total_gross_notional"  # 30000 + 24000
    assert isinstance(h.verdict(target("0.3", 2)), TargetApproved)
    assert isinstance(h.verdict(target("1", 3, client="bob")), TargetApproved)  # bob has no such cap


def test_clamps_apply_in_order_and_a_later_rejection_wins() -> None:
    h = harness(max_position=D(1), max_order_notional=D(30000), on_breach="clamp")
    out = h.send(target("2"))  # cut to 1 by max_position, then to 0.5 by the order notional
    assert [(v.limit, v.action) for v in out[:-1]] == [("max_position", "clamped"), ("max_order_notional", "clamped")]
    assert out[-1].target.qty == D("0.5")
    h = harness(max_position=D(1), price_band_pct=D(1), on_breach="clamp")
    (v,) = h.send(target("2", price="70000"))  # clamped, then off the band: only the rejection is sent
    assert (v.limit, v.action) == ("price_band", "rejected")


def test_open_orders_are_counted_from_the_order_events() -> None:
    h = harness(max_open_orders=2)
    assert sj.ORDERS in {i.subject for i in h.actor.inputs()} and sj.FILLS not in {i.subject for i in h.actor.inputs()}

    def submit(n: int, qty: str = "0.1") -> SubmitOrder:
        return SubmitOrder(id=f"o{n}", ts_event=T0, client="alice", venue="binance", symbol="BTCUSDT", side="buy",
                           qty=D(qty), order_type="limit", limit_price=D(59000), target_id=f"t{n}")

    h.send(submit(1), submit(2), OrderAccepted(id="a2", ts_event=T0, client_order_id="o2", venue_order_id="v2",
                                               client="alice", venue="binance", symbol="BTCUSDT"))
    v = h.verdict(target("0.1"))
    assert breach(v) == "max_open_orders" and "2 open orders" in v.detail
    assert isinstance(h.verdict(target("0.1", client="bob")), TargetApproved)  # per client
    partial = OrderFilled(id="x1", ts_event=T0, client_order_id="o1", client="alice", venue="binance",
                          symbol="BTCUSDT", side="buy", qty=D("0.05"), price=D(59000), fee=D(0))
    h.send(partial)
    assert breach(h.verdict(target("0.1", 2))) == "max_open_orders"  # o1 is half filled: still open
    h.send(OrderCanceled(id="c2", ts_event=T0, client_order_id="o2", client="alice", venue="binance",
                         symbol="BTCUSDT", reason="replaced"))
    assert isinstance(h.verdict(target("0.1", 3)), TargetApproved)
    assert h.actor.position("alice", "binance", "BTCUSDT") == D("0.05")  # fills still make positions
    assert h.actor.status()["open_orders"] == {"alice": 1}


def test_order_rates_are_rolling_windows_of_the_injected_clock_and_guard_reductions_too() -> None:
    h = harness(max_orders_per_s=2, max_orders_per_min=3)
    assert isinstance(h.verdict(target("0.1", 1)), TargetApproved)
    assert isinstance(h.verdict(target("0.2", 2)), TargetApproved)
    v = h.verdict(target("0", 3))  # a reduction, but a third approval within the second
    assert breach(v) == "max_orders_per_s" and "2 targets approved in the last 1 s" in v.detail
    h.clock.advance_to(T0 + S)  # the first two are now a second old: out of the window
    assert isinstance(h.verdict(target("0.3", 4)), TargetApproved)
    assert breach(h.verdict(target("0.4", 5))) == "max_orders_per_min"
    h.clock.advance_to(T0 + 60 * S)
    assert isinstance(h.verdict(target("0.4", 6)), TargetApproved)
    assert h.actor.status()["limit_state"]["alice"]["max_orders_per_min"] == {"approved_in_window": 2}


def test_daily_loss_reduces_only_until_the_next_utc_day() -> None:
    day0 = T0 - T0 % DAY
    h = harness(max_daily_loss=D(1000))
    assert {sj.POSITIONS, sj.PRICES} <= {i.subject for i in h.actor.inputs()}
    h.send(fill("f1", "buy", "1"), position("1", "60000"))  # equity 10000 (the capital) at the start
    h.send(snapshot("59100", ts=T0 + 1))  # down 900
    assert isinstance(h.verdict(target("1.5", 1)), TargetApproved)
    h.send(snapshot("59000", ts=T0 + 2), snapshot("59500", ts=T0 + 3))  # down 1000 (trips), then back up
    v = h.verdict(target("1.5", 2))
    assert breach(v) == "max_daily_loss" and "1000 below the UTC day's starting equity 10000" in v.detail
    assert "only reductions pass until the next UTC day" in v.detail
    assert isinstance(h.verdict(target("0.5", 3)), TargetApproved)  # reducing passes
    state = h.actor.status()["limit_state"]["alice"]["max_daily_loss"]
    assert (state["tripped"], state["loss"], state["day_start_equity"]) == (True, "500", "10000")
    h.clock.advance_to(day0 + DAY)  # the next UTC day starts at the newest equity, 9500
    assert isinstance(h.verdict(target("1.5", 4)), TargetApproved)
    state = h.actor.status()["limit_state"]["alice"]["max_daily_loss"]
    assert (state["tripped"], state["day_start_equity"]) == (False, "9500")


def test_a_halting_drawdown_in_percent_refuses_everything_until_trading_is_resumed() -> None:
    alice = ClientConfig(id="alice", strategies=["sma"], capital=D(10000), risk=LimitsConfig(
        max_price_age_s=None, max_drawdown_pct=D(10), drawdown_action="halted"))
    h = Harness(config=Config(clients=[alice], strategies=CONFIG.strategies))
    h.enable()
    h.send(fill("f1", "buy", "1"), position("1", "60000"))
    h.send(snapshot("61000", ts=T0 + 1))  # peak 11000
    h.send(snapshot("59900", ts=T0 + 2))  # 9900: 1100 down, 10% of the peak
    v = h.verdict(target("0", 1))  # not even a flattening passes
    assert breach(v) == "max_drawdown" and "nothing passes until trading is resumed" in v.detail
    h.clock.advance_to(T0 + 2 * DAY)
    h.send(snapshot("61000", ts=T0 + 2 * DAY))  # recovered, another day: still tripped
    assert breach(h.verdict(target("0", 2))) == "max_drawdown"
    h.enable(False)
    h.enable(True)  # a person resumed: the peak starts again at the equity of now
    assert isinstance(h.verdict(target("1.1", 3)), TargetApproved)
    assert h.actor.status()["limit_state"]["alice"]["max_drawdown"]["peak_equity"] == "11000"


def test_losses_are_marked_from_the_newest_position_per_market() -> None:
    h = harness(max_daily_loss=D(100))
    h.send(position("1", "60000", n=2, ts=T0 + 5), position("2", "1", realized="-1000", n=1, ts=T0))  # older: ignored
    assert isinstance(h.verdict(target("0.1")), TargetApproved)
    h.send(position("0", "0", realized="-100", n=3, ts=T0 + 6))  # realized pnl counts, flat or not
    assert breach(h.verdict(target("0.1", 2))) == "max_daily_loss"


@pytest.mark.parametrize("qty, why", [
    ("NaN", "is not a finite number"), ("sNaN", "is not a finite number"), ("Infinity", "is not a finite number"),
    ("-Infinity", "is not a finite number"), ("1e20", "above the sanity cap"), ("10000000", "notional"),
])
def test_a_target_no_limit_can_be_checked_against_gets_a_reason(qty: str, why: str) -> None:
    h = harness(max_position=D(1), max_daily_loss=D(10), max_orders_per_s=1)
    v = h.verdict(target(qty))
    assert breach(v) == "invalid_target" and why in v.detail and "TargetPosition" in v.detail
    assert breach(harness().verdict(target("NaN", client="mallory"))) == "invalid_target"
    assert breach(h.verdict(target("1", 2, price="NaN"))) == "invalid_target"


def test_a_negative_zero_target_is_flat_and_an_unknown_client_is_named() -> None:
    h = harness(max_position=D(1))
    h.send(fill("f1", "buy", "0.5"))
    v = h.verdict(target("-0"))
    assert isinstance(v, TargetApproved) and str(v.target.qty) == "0"
    assert breach(h.verdict(target("0.1", 2, client="nobody"))) == "unknown_client"


def test_top_level_risk_defaults_every_client_and_a_clients_own_value_wins(tmp_path) -> None:
    path = tmp_path / "bosun.toml"
    path.write_text('[risk]\nmax_gross_notional = "1000"\nmax_price_age_s = 30\non_breach = "clamp"\n'
                    '[[clients]]\nid = "a"\n'
                    '[[clients]]\nid = "b"\nrisk = { max_gross_notional = "5", max_price_age_s = 300 }\n')
    risk = app_config.load(path).risk_config()
    a, b = risk.limits_of("a"), risk.limits_of("b")
    assert (a.max_gross_notional, a.max_price_age_s, a.on_breach) == (D(1000), 30, "clamp")
    assert (b.max_gross_notional, b.max_price_age_s, b.on_breach) == (D(5), 300, "clamp")  # 300 = built-in, still wins
    assert (a.max_position, a.daily_loss_action, risk.capital) == (None, "reducing", {"a": D(10000), "b": D(10000)})


@pytest.mark.parametrize("text, expected", [
    ('[risk]\nmax_open_orders = 0\n', "risk.max_open_orders must be an integer >= 1, got 0"),
    ('[risk]\nmax_drawdown_pct = "150"\n', "risk.max_drawdown_pct must be in (0, 100], got 150"),
    ('[risk]\nmax_daily_loss = "-5"\n', "risk.max_daily_loss must be a finite number > 0, got -5"),
    ('[risk]\non_breach = "shrug"\n', "(expected one of: 'clamp', 'reject')"),
    ('[[clients]]\nid = "a"\nrisk = { drawdown_action = "panic" }\n', "(expected one of: 'reducing', 'halted')"),
])
def test_a_wrong_risk_value_is_named(tmp_path, text: str, expected: str) -> None:
    path = tmp_path / "bosun.toml"
    path.write_text(text)
    with pytest.raises(app_config.ConfigError, match="bosun.toml: ") as err:
        app_config.load(path)
    assert expected in str(err.value)


def test_bosun_status_shows_each_limit_with_its_state() -> None:
    h = harness(max_daily_loss=D(1000), max_orders_per_s=5)
    h.send(target("0.1"))
    text = render({"trading_enabled": True, "prices": [], "risk": h.actor.status(), "execution": None,
                   "portfolio": None})
    assert "limit        alice      max_daily_loss       equity down 1000 from the UTC day's start: reducing" in text
    assert "(day_start_equity 10000, equity 10000, loss 0, tripped False)" in text
    assert "max_orders_per_s     at most 5 approvals in any 1 s  (approved_in_window 1)" in text
