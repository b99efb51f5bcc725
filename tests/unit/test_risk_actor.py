"""RiskActor on the in-process bus: the kill switch (off at start), position and notional
limits, stale prices, positions from fills, and deterministic verdict ids."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bosun.runtime.clock import SimClock
from bosun.apps.config import ClientConfig, Config
from services.risk.config import LimitsConfig as RiskConfig
from services.signal.config import StrategyConfig
from bosun.runtime.inproc import InProcessBus
from proto import codec
from proto import subjects as sj
from proto.events import (Event, OrderFilled, PriceSnapshot, RiskLimitBreached, TargetApproved, TargetPosition,
                          TradingStateChanged)
from services.risk import limits
from services.risk.actor import RiskActor

D = Decimal
S = 1_000_000_000
T0 = 1_700_000_000 * S

ALICE = ClientConfig(id="alice", strategies=["sma"], risk=RiskConfig(
    max_position=D(1), max_position_per_symbol={"ETHUSDT": D(5)}, max_order_notional=D(50000), max_price_age_s=60))
LOOSE = ClientConfig(id="loose", strategies=["sma"], risk=RiskConfig(max_order_notional=D(1000), max_price_age_s=None))
CONFIG = Config(clients=[ALICE, LOOSE], strategies=[StrategyConfig(name="sma", params={"fast": 1, "slow": 2})])


def target(qty: str, n: int = 1, client: str = "alice", symbol: str = "BTCUSDT",
           price: str = "60000", ts: int = T0) -> TargetPosition:
    return TargetPosition(id=f"{client}.sma.binance.{symbol}.1m.{n}", ts_event=ts, client=client, venue="binance",
                          symbol=symbol, qty=D(qty), strategy="sma", price=D(price))


def snapshot(price: str, ts: int = T0, symbol: str = "BTCUSDT") -> PriceSnapshot:
    return PriceSnapshot(id=f"binance.{symbol}.{ts}", ts_event=ts, venue="binance", symbol=symbol, price=D(price))


def fill(fill_id: str, side: str, qty: str, client: str = "alice", symbol: str = "BTCUSDT") -> OrderFilled:
    return OrderFilled(id=fill_id, ts_event=T0, client_order_id=f"o-{fill_id}", client=client, venue="binance",
                       symbol=symbol, side=side, qty=D(qty), price=D(60000), fee=D(0))


class Harness:
    def __init__(self, enabled: bool | None = None, config: Config = CONFIG) -> None:
        self.clock = SimClock(T0)
        self.bus = InProcessBus()
        self.out: list[Event] = []
        if enabled is not None:  # the key as it stands before risk starts
            self.bus.set_trading_enabled(enabled)
        self.bus.publish(snapshot("60000"))
        self.bus.publish(snapshot("3000", symbol="ETHUSDT"))
        self.actor = self.bus.attach(RiskActor(self.clock, self.bus, config.risk_config()))
        self.bus.tap(lambda subject, message: isinstance(message, (TargetApproved, RiskLimitBreached,
                                                                   TradingStateChanged))
                     and self.out.append(message))
        self.bus.drain()

    def send(self, *messages: Event) -> list[Event]:
        self.out.clear()
        for message in messages:
            self.bus.publish(message)
        self.bus.drain()
        return list(self.out)

    def verdict(self, t: TargetPosition) -> Event:
        (v,) = self.send(t)
        return v

    def enable(self, enabled: bool = True) -> list[Event]:
        self.out.clear()
        self.bus.set_trading_enabled(enabled)
        self.bus.drain()
        return list(self.out)


def breach(v: Event) -> str:
    assert isinstance(v, RiskLimitBreached), v
    return v.limit


def test_disabled_at_start_refuses_an_exposure_increasing_target() -> None:
    h = Harness()
    v = h.verdict(target("0.5"))
    assert isinstance(v, RiskLimitBreached)
    assert (v.id, v.limit, v.target_id, v.client, v.symbol) == (
        "alice.sma.binance.BTCUSDT.1m.1.kill_switch", "kill_switch", "alice.sma.binance.BTCUSDT.1m.1", "alice",
        "BTCUSDT")
    assert "trading is disabled" in v.detail and "0.5" in v.detail
    assert h.actor.status()["trading_enabled"] is False


def test_reducing_targets_pass_while_disabled_and_nothing_else_does() -> None:
    h = Harness()
    h.send(fill("f1", "buy", "0.8"))
    assert isinstance(h.verdict(target("0.3", 1)), TargetApproved)  # smaller, same side
    assert isinstance(h.verdict(target("0", 2)), TargetApproved)  # flat
    assert isinstance(h.verdict(target("0.8", 3)), TargetApproved)  # unchanged is not an increase
    assert breach(h.verdict(target("-0.3", 4))) == "kill_switch"  # other side of zero
    assert breach(h.verdict(target("0.9", 5))) == "kill_switch"  # larger
    h.send(fill("f2", "sell", "1.8"))  # now short 1.0
    assert isinstance(h.verdict(target("-0.4", 6)), TargetApproved)
    assert breach(h.verdict(target("0.4", 7))) == "kill_switch"


def test_enabled_approves_with_the_target_id_and_publishes_state_only_on_change() -> None:
    h = Harness()
    h.enable(False)
    assert h.enable(False) == []  # already disabled: no change
    (changed,) = h.enable(True)
    assert changed == TradingStateChanged(id=f"trading.True.{T0}", ts_event=T0, enabled=True,
                                          reason="kill switch key set to true", state="active", by="kill switch")
    assert h.enable(True) == []
    t = target("0.5")
    assert h.verdict(t) == TargetApproved(id=t.id, ts_event=T0, target=t)
    h.clock.advance_to(T0 + S)
    (off,) = h.enable(False)
    assert (off.id, off.enabled, off.reason) == (f"trading.False.{T0 + S}", False, "kill switch key set to false")
    assert h.actor.status()["trading_enabled"] is False


def test_a_key_set_before_start_is_honoured() -> None:
    assert Harness(enabled=True).actor.enabled is True
    assert Harness(enabled=False).actor.enabled is False
    assert Harness().actor.enabled is None  # unknown until the key is read: treated as disabled


def test_the_first_value_read_after_a_restart_publishes_even_when_false() -> None:
    h = Harness()
    (halted,) = h.enable(False)
    assert halted == TradingStateChanged(id=f"trading.False.{T0}", ts_event=T0, enabled=False,
                                         reason="kill switch key set to false", state="halted", by="kill switch")
    assert h.enable(False) == []
    (changed,) = Harness(enabled=False).out  # the key as it stood before start
    assert changed.enabled is False


def test_max_position_uses_the_per_symbol_limit_first() -> None:
    h = Harness()
    h.enable()
    v = h.verdict(target("-1.5"))
    assert breach(v) == "max_position" and "-1.5" in v.detail and "1 BTCUSDT" in v.detail
    h.send(fill("f1", "buy", "0.5"))  # so that the order to the limit stays under the notional limit
    assert isinstance(h.verdict(target("1", 2)), TargetApproved)  # at the limit is allowed
    assert isinstance(h.verdict(target("4", 3, symbol="ETHUSDT")), TargetApproved)  # ETHUSDT limit is 5
    assert breach(h.verdict(target("5.1", 4, symbol="ETHUSDT"))) == "max_position"


def test_max_order_notional_uses_the_position_from_fills() -> None:
    h = Harness()
    h.enable()
    v = h.verdict(target("0.9"))  # 0.9 x 60000 = 54000 > 50000
    assert breach(v) == "max_order_notional" and "54000" in v.detail and "50000" in v.detail
    h.send(fill("f1", "buy", "0.5"), fill("f1", "buy", "0.5"))  # the redelivered copy counts once
    assert h.actor.position("alice", "binance", "BTCUSDT") == D("0.5")
    assert isinstance(h.verdict(target("0.9", 2)), TargetApproved)  # 0.4 x 60000 = 24000
    assert breach(h.verdict(target("-0.4", 3))) == "max_order_notional"  # 0.9 x 60000 again
    h.send(snapshot("40000", ts=T0 + S))  # the newest price is what the notional is valued at
    assert isinstance(h.verdict(target("-0.4", 4)), TargetApproved)  # 0.9 x 40000 = 36000


def test_stale_or_missing_price_is_refused() -> None:
    h = Harness()
    h.enable()
    now = T0 + 61 * S
    h.clock.advance_to(now)
    v = h.verdict(target("0.1", ts=now))
    assert breach(v) == "stale_price" and "61.0 s old" in v.detail and "60 s" in v.detail
    h.send(snapshot("60100", ts=now))
    assert isinstance(h.verdict(target("0.1", 2, ts=now)), TargetApproved)
    v = h.verdict(target("0.1", 3, symbol="SOLUSDT", ts=now))
    assert breach(v) == "stale_price" and "no price for SOLUSDT" in v.detail
    h.send(snapshot("1", ts=T0))  # an older snapshot arriving late does not replace the newer one
    assert isinstance(h.verdict(target("0.1", 4, ts=now)), TargetApproved)


def test_a_stale_target_is_refused_saying_how_old_it_is() -> None:
    h = Harness()
    h.enable()
    now = T0 + 90 * S
    h.clock.advance_to(now)
    h.send(snapshot("60000", ts=now))  # the price is fresh: only the target is old
    v = h.verdict(target("0.1", ts=T0 + 29 * S))
    assert breach(v) == "stale_target" and "61.0 s old" in v.detail and "60 s" in v.detail
    assert isinstance(h.verdict(target("0.1", 2, ts=T0 + 30 * S)), TargetApproved)  # 60 s: at the limit
    assert isinstance(h.verdict(target("5", client="loose", symbol="SOLUSDT", price="150")), TargetApproved)  # None


def test_a_reducing_target_is_never_blocked_but_by_an_unknown_client() -> None:
    h = Harness()
    h.send(fill("f1", "buy", "0.9"), fill("f2", "buy", "5.5", symbol="ETHUSDT"))  # ETH over its limit of 5
    h.clock.advance_to(T0 + 3600 * S)  # disabled, stale target and stale price
    assert isinstance(h.verdict(target("0", 1)), TargetApproved)
    assert isinstance(h.verdict(target("5.2", 2, symbol="ETHUSDT")), TargetApproved)  # above max_position
    h.enable()
    h.send(snapshot("1000000", ts=T0 + 3600 * S))
    assert isinstance(h.verdict(target("0.1", 3)), TargetApproved)  # an order of 0.8 x 1e6 > notional
    assert breach(h.verdict(target("0.1", 4, ts=T0 + 3600 * S, client="mallory"))) == "unknown_client"
    assert breach(h.verdict(target("1", 5, ts=T0 + 3600 * S))) == "max_order_notional"  # an increase is checked


def test_without_a_price_age_limit_the_targets_own_price_values_the_order() -> None:
    h = Harness()
    h.enable()
    assert isinstance(h.verdict(target("5", client="loose", symbol="SOLUSDT", price="150")), TargetApproved)
    assert breach(h.verdict(target("7", 2, client="loose", symbol="SOLUSDT", price="150"))) == "max_order_notional"


def test_checks_run_in_order_kill_switch_first() -> None:
    h = Harness()
    now = T0 + 3600 * S
    h.clock.advance_to(now)  # stale and too large and disabled: kill_switch wins
    assert breach(h.verdict(target("5"))) == "kill_switch"
    h.enable()
    assert breach(h.verdict(target("5", 2))) == "stale_target"
    assert breach(h.verdict(target("5", 3, ts=now))) == "stale_price"
    h.send(snapshot("60000", ts=now))
    assert breach(h.verdict(target("5", 4, ts=now))) == "max_position"


def test_a_client_without_limits_meets_only_the_kill_switch_and_prices_are_not_read() -> None:
    free = ClientConfig(id="free", strategies=["sma"], risk=RiskConfig(max_price_age_s=None))
    h = Harness(config=Config(clients=[free], strategies=CONFIG.strategies))
    assert sj.PRICES not in {i.subject for i in h.actor.inputs()}  # no limit of its reads a price
    assert breach(h.verdict(target("5", client="free"))) == "kill_switch"
    h.enable()
    h.clock.advance_to(T0 + 3600 * S)  # an old target, no recent price, any size: no limit says no
    assert isinstance(h.verdict(target("1000", 2, client="free")), TargetApproved)
    h.send(fill("f1", "buy", "1000", client="free"))
    assert isinstance(h.verdict(target("0", 3, client="free")), TargetApproved)


def test_unknown_client_is_breached() -> None:
    h = Harness()
    h.enable()
    v = h.verdict(target("0.1", client="mallory"))
    assert breach(v) == "unknown_client" and "'mallory'" in v.detail and "alice, loose" in v.detail


def test_a_replayed_target_gets_the_same_verdict_id() -> None:
    h = Harness()
    t = target("0.5")
    first, again = h.verdict(t), h.verdict(t)
    assert first.id == again.id == f"{t.id}.kill_switch"
    h.enable()
    h.clock.advance_to(T0 + S)
    first, again = h.verdict(target("0.5", 2)), h.verdict(target("0.5", 2))
    assert first.id == again.id == target("0.5", 2).id


def test_inputs_and_status() -> None:
    h = Harness()
    inputs = {i.subject: i for i in h.actor.inputs()}
    assert set(inputs) == {sj.TARGETS, sj.PRICES, sj.FILLS, sj.TRADING_ENABLED, sj.CLIENT_SWITCHES, sj.SCOPE_STATES}
    assert inputs[sj.TRADING_ENABLED].decode(b" TRUE\n") is True  # the plain-text kill switch
    assert inputs[sj.TARGETS].decode(codec.encode(target("1"))) == target("1")
    h.enable()
    h.send(fill("f1", "buy", "0.2"), target("0.5"), target("9", 2))
    assert h.actor.status() == {
        "trading_enabled": True, "positions": {"alice.binance.BTCUSDT": "0.2"}, "approved": 1, "breached": 1,
        "breaches_by_limit": {"max_position": 1},
        "limits": {
            "alice": {"kill_switch": "only reductions while trading is disabled",
                      "stale_target": "a target older than 60 s is refused",
                      "stale_price": "no price, or one older than 60 s: refused",
                      "max_position": "|qty| <= 1 per symbol, ETHUSDT 5",
                      "max_order_notional": "|order qty| x price <= 50000 (quote currency)"},
            "loose": {"kill_switch": "only reductions while trading is disabled",
                      "max_order_notional": "|order qty| x price <= 1000 (quote currency)"},
        },
        "clamped_by_limit": {}, "limit_state": {"alice": {}, "loose": {}}, "open_orders": {},
        "scopes": {}, "breakers": {},
        "last_breaches": [{"at": "2023-11-14T22:13:20Z", "scope": "market.alice.binance.BTCUSDT",
                           "limit": "max_position", "action": "rejected",
                           "detail": "target 9 BTCUSDT exceeds the maximum position of 1 BTCUSDT (absolute)"}],
    }
    assert list(h.actor.status()["limits"]["alice"]) == [  # in the order they are checked
        "kill_switch", "stale_target", "stale_price", "max_position", "max_order_notional"]


def test_a_price_band_refuses_a_target_sized_far_from_the_newest_price() -> None:
    banded = ClientConfig(id="banded", strategies=["sma"], risk=RiskConfig(price_band_pct=D(2), max_price_age_s=None))
    h = Harness(config=Config(clients=[banded], strategies=CONFIG.strategies))
    assert sj.PRICES in {i.subject for i in h.actor.inputs()}  # its only price-reading limit is the band
    h.enable()
    assert isinstance(h.verdict(target("0.1", client="banded", price="61200")), TargetApproved)  # 2%: at the band
    v = h.verdict(target("0.1", 2, client="banded", price="61201"))
    assert breach(v) == "price_band" and "2.00%" in v.detail and "60000" in v.detail and "band is 2%" in v.detail
    assert breach(h.verdict(target("0.1", 3, client="banded", price="58000"))) == "price_band"  # below too
    v = h.verdict(target("0.1", 4, client="banded", symbol="SOLUSDT", price="150"))
    assert breach(v) == "price_band" and "no price for SOLUSDT" in v.detail  # nothing to check it against
    h.send(fill("f1", "buy", "0.1", client="banded"))
    assert isinstance(h.verdict(target("0", 5, client="banded", price="1")), TargetApproved)  # flattening


def test_limits_are_built_from_config_kill_switch_always_first() -> None:
    assert [type(x) for x in limits.build(RiskConfig(max_price_age_s=None))] == [limits.KillSwitch]
    everything = RiskConfig(max_position=D(1), max_order_notional=D(10), max_price_age_s=5, price_band_pct=D(1))
    assert [x.name for x in limits.build(everything)] == [
        "kill_switch", "stale_target", "stale_price", "max_position", "max_order_notional", "price_band"]
    only_per_symbol = limits.build(RiskConfig(max_position_per_symbol={"ETHUSDT": D(5)}, max_price_age_s=None))
    assert only_per_symbol[-1].describe() == "|qty| <= unlimited per symbol, ETHUSDT 5"


def test_a_limit_set_to_a_non_finite_or_non_positive_value_is_refused_naming_it() -> None:
    for bad, name in ((dict(max_position=D("NaN")), "risk.max_position"),
                      (dict(max_order_notional=D("-1")), "risk.max_order_notional"),
                      (dict(max_price_age_s=float("inf")), "risk.max_price_age_s"),
                      (dict(price_band_pct=D(0)), "risk.price_band_pct"),
                      (dict(max_position_per_symbol={"ETHUSDT": D("sNaN")}), "risk.max_position_per_symbol.ETHUSDT")):
        with pytest.raises(ValueError, match=rf"^{name} must be a finite number > 0, got "):
            RiskConfig(**bad)
