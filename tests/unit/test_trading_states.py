"""Trading states per scope (bosun.model.trading) as risk and execution apply them on the
in-process bus, the circuit breakers in risk, and execution's last-line guard."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from bosun.apps.config import ClientConfig, Config
from bosun.model.order_rules import DRY_RUN, UNEXPLAINED
from bosun.model.trading import (ACTIVE, HALTED, REDUCING, ScopeStates, parse_state, scope_change, state_value,
                                 switch_change)
from bosun.runtime.actor import KvEntry
from bosun.runtime.clock import SimClock
from bosun.runtime.inproc import InProcessBus
from proto import subjects as sj
from proto.events import (CancelOrder, Event, MarketHalted, OrderAccepted, OrderRejected,
                          RiskLimitBreached, SubmitOrder, TargetApproved, TradingStateChanged)
from services.alerts.alerts import alert_for
from services.execution.config import VenueConfig
from services.risk.actor import RiskActor
from services.risk.config import LimitsConfig
from tests.unit import test_execution_actor as ex
from tests.unit.test_risk_actor import CONFIG, S, T0, breach, fill, snapshot, target

MS = 1_000_000


# ----------------------------------------------------------------------------- the model


def test_the_strictest_scope_holds_and_a_lookup_with_nothing_restricted_is_active() -> None:
    states = ScopeStates()
    assert states.of("alice", "binance", "BTCUSDT") == (ACTIVE, "global") and not states.restricted
    states.set("market.alice.binance.BTCUSDT", REDUCING)
    assert states.of("alice", "binance", "BTCUSDT") == (REDUCING, "market.alice.binance.BTCUSDT")
    assert states.of("alice", "binance", "ETHUSDT") == (ACTIVE, "global")
    assert states.of("bob", "binance", "BTCUSDT") == (ACTIVE, "global")
    states.set("switch.alice", HALTED)  # the client's own switch, shown as its client scope
    assert states.of("alice", "binance", "ETHUSDT") == (HALTED, "client.alice")
    states.set("global", REDUCING)
    assert states.of("bob", "binance", "BTCUSDT") == (REDUCING, "global")
    assert states.of("alice", "binance", "BTCUSDT") == (HALTED, "client.alice")
    for name in ("switch.alice", "market.alice.binance.BTCUSDT", "global"):
        states.set(name, ACTIVE)
    assert not states.restricted and states.of("alice", "binance", "BTCUSDT") == (ACTIVE, "global")


@pytest.mark.parametrize("value, expected", [
    (b"halted", (HALTED, "")), (b" Reducing\n", (REDUCING, "")), (b'"active"', (ACTIVE, "")),
    (b"halted breaker stale_price: 3 s old", (HALTED, "breaker stale_price: 3 s old")),
])
def test_a_state_value_is_a_word_and_an_optional_note(value, expected) -> None:
    assert parse_state(value) == expected
    assert parse_state(state_value(*expected)) == expected


@pytest.mark.parametrize("value", [None, b"", b"off", b"nan", b"\xff\xfe"])
def test_a_deleted_or_unreadable_state_is_halted_and_says_why(value) -> None:
    change = scope_change("state.client.alice", value)
    assert (change.name, change.state) == ("client.alice", HALTED)
    assert "state.client.alice" in change.why or "state.client.alice" in change.by


@pytest.mark.parametrize("value, state", [(b"true", ACTIVE), (b"false", HALTED), (None, HALTED), (b"maybe", HALTED)])
def test_a_client_switch_reads_as_the_global_one_and_fails_closed(value, state) -> None:
    assert switch_change("trading_enabled.alice", value)[:2] == ("switch.alice", state)


def test_a_state_key_that_names_no_scope_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="state.alice: not a scope"):
        scope_change("state.alice", b"halted")


# ----------------------------------------------------------------------------- risk


BREAKERS = LimitsConfig(max_price_age_s=None, stale_price_ms=2000, max_errors=2, errors_window_s=10,
                        max_ack_latency_ms=500, halt_on_unknown_order=True, halt_on_market_halt=True)


class Risk:
    def __init__(self, config: Config = CONFIG, persist_trips: bool = False) -> None:
        self.clock = SimClock(T0)
        self.bus = InProcessBus()
        self.bus.set_trading_enabled(True)
        self.bus.publish(snapshot("60000"))
        self.bus.publish(snapshot("3000", symbol="ETHUSDT"))
        self.actor = self.bus.attach(RiskActor(self.clock, self.bus, config.risk_config(), persist_trips))
        self.seen: list[tuple[str, object]] = []
        self.bus.tap(lambda subject, message: self.seen.append((subject, message)))
        self.bus.drain()

    def send(self, *messages: object) -> list[object]:
        start = len(self.seen)
        for message in messages:
            self.bus.put_control(*message) if isinstance(message, tuple) else self.bus.publish(message)
        self.bus.drain()
        return [m for _, m in self.seen[start:] if m not in messages and not isinstance(m, KvEntry)
                or isinstance(m, KvEntry) and (m.key, m.value) not in messages]

    def verdict(self, t) -> Event:
        (v,) = [m for m in self.send(t) if isinstance(m, (TargetApproved, RiskLimitBreached))]
        return v

    def tick(self, at: int) -> list[object]:
        self.clock.advance_to(at)
        start = len(self.seen)
        self.actor.out = self.bus
        self.actor.on_tick(at)
        self.bus.drain()
        return [m for _, m in self.seen[start:]]


def states_of(out: list[object]) -> list[tuple[str, str, str]]:
    return [(m.scope, m.state, m.by) for m in out if isinstance(m, TradingStateChanged)]


def test_a_clients_own_switch_halts_that_client_and_no_other() -> None:
    r = Risk()
    out = r.send(("trading_enabled.alice", b"false"))
    assert states_of(out) == [("client.alice", HALTED, "client switch")]
    assert breach(r.verdict(target("0.5"))) == "trading_state"
    assert isinstance(r.verdict(target("0.01", client="loose")), TargetApproved)
    r.send(fill("f1", "buy", "0.4"))
    assert isinstance(r.verdict(target("0.1", 2)), TargetApproved)  # a reduction passes
    assert states_of(r.send(("trading_enabled.alice", b"true"))) == [("client.alice", ACTIVE, "client switch")]
    assert isinstance(r.verdict(target("0.5", 3)), TargetApproved)


def test_reducing_lets_only_reductions_through_and_names_who_set_it() -> None:
    r = Risk()
    out = r.send(("state.market.alice.binance.BTCUSDT", b"reducing bosun reduce (ann@desk): volatile"))
    assert [(m.scope, m.state, m.by, m.reason, m.enabled) for m in out if isinstance(m, TradingStateChanged)] == [
        ("market.alice.binance.BTCUSDT", REDUCING, "bosun reduce (ann@desk)", "volatile", True)]
    v = r.verdict(target("0.5"))
    assert breach(v) == "trading_state" and "market.alice.binance.BTCUSDT is reducing" in v.detail
    assert isinstance(r.verdict(target("0.5", 2, symbol="ETHUSDT", price="3000")), TargetApproved)
    assert r.actor.status()["scopes"] == {"market.alice.binance.BTCUSDT": REDUCING}


def trips(out: list[object]) -> list[tuple[str, str]]:
    return [(m.scope, m.by) for m in out if isinstance(m, TradingStateChanged) and m.state == HALTED]


def puts(out: list[object]) -> list[str]:
    return [m.key for m in out if isinstance(m, KvEntry)]


def breaker_config() -> Config:
    return Config(clients=[ClientConfig(id="alice", strategies=["sma"], risk=BREAKERS),
                           ClientConfig(id="bob", strategies=["sma"], risk=LimitsConfig(max_price_age_s=None))],
                  strategies=CONFIG.strategies)


def order(n: int, client: str = "alice") -> SubmitOrder:
    return SubmitOrder(id=f"o{n}", ts_event=T0, client=client, venue="binance", symbol="BTCUSDT", side="buy",
                       qty=D("0.1"), order_type="market", target_id=f"t{n}")


def rejected(n: int, reason: str = "insufficient balance", client: str = "alice") -> OrderRejected:
    return OrderRejected(id=f"o{n}", ts_event=T0, client_order_id=f"o{n}", client=client, venue="binance",
                         symbol="BTCUSDT", reason=reason)


def test_each_breaker_halts_its_scope_in_kv_once() -> None:
    r = Risk(breaker_config())
    # errors: a third reject within 10 s (dry-run rejects do not count; bob sets no breaker)
    assert trips(r.send(rejected(1), rejected(2), rejected(3, DRY_RUN), rejected(4, client="bob"))) == []
    out = r.send(rejected(5))
    assert trips(out) == [("client.alice", "breaker errors")] and puts(out) == ["state.client.alice"]
    assert trips(r.send(rejected(6))) == []  # already halted: no second trip
    assert r.actor.status()["scopes"] == {"client.alice": HALTED}
    assert r.bus.kv("$KV.control.state.client.alice").value.startswith(b"halted breaker errors: more than 2")

    r = Risk(breaker_config())
    # unknown order: reconciliation cancels one no intent explains
    unexplained = CancelOrder(id="x.cancel", ts_event=T0, client_order_id="x", client="alice", venue="binance",
                              symbol="BTCUSDT", reason=UNEXPLAINED)
    assert trips(r.send(unexplained)) == [("market.alice.binance.BTCUSDT", "breaker unknown_order")]
    # market halted: every client that sets the breaker, on that market only
    halted = MarketHalted(id="h1", ts_event=T0, venue="binance", symbol="ETHUSDT", reason="maintenance")
    assert trips(r.send(halted)) == [("market.alice.binance.ETHUSDT", "breaker market_halted")]

    r = Risk(breaker_config())
    # ack latency: answered late, then not answered at all (seen on a tick)
    r.send(order(1))
    r.clock.advance_to(T0 + 600 * MS)
    out = r.send(OrderAccepted(id="a1", ts_event=T0, client_order_id="o1", venue_order_id="v1", client="alice",
                               venue="binance", symbol="BTCUSDT"))
    assert trips(out) == [("market.alice.binance.BTCUSDT", "breaker ack_latency")]
    r.send(order(2, client="alice"), ("state.market.alice.binance.BTCUSDT", b"active"))
    assert trips(r.tick(T0 + 1000 * MS)) == []
    assert trips(r.tick(T0 + 1200 * MS)) == [("market.alice.binance.BTCUSDT", "breaker ack_latency")]

    r = Risk(breaker_config())
    # stale price: on a tick for a market held, on a target for one targeted
    r.send(fill("f1", "buy", "0.1"))
    assert trips(r.tick(T0 + 2 * S)) == []
    assert trips(r.tick(T0 + 3 * S)) == [("market.alice.binance.BTCUSDT", "breaker stale_price")]
    v = r.verdict(target("0.2", symbol="ETHUSDT", price="3000", ts=T0 + 3 * S))
    assert breach(v) == "trading_state" and "no price" not in v.detail  # ETH has no price: nothing stale to trip on
    assert isinstance(v, RiskLimitBreached)


def test_a_trip_survives_a_restart_because_it_is_read_back_from_kv() -> None:
    r = Risk(breaker_config())
    r.send(CancelOrder(id="x.cancel", ts_event=T0, client_order_id="x", client="alice", venue="binance",
                       symbol="BTCUSDT", reason=UNEXPLAINED))
    key = "state.market.alice.binance.BTCUSDT"
    stored = r.bus.kv(f"$KV.control.{key}").value
    restarted = Risk(breaker_config())  # a new process: only KV carries over
    out = restarted.send((key, stored))
    assert restarted.actor.status()["scopes"] == {"market.alice.binance.BTCUSDT": HALTED}
    assert [(m.state, m.by) for m in out if isinstance(m, TradingStateChanged)] == [(HALTED, "breaker unknown_order")]
    assert breach(restarted.verdict(target("0.5"))) == "trading_state"


def test_the_order_logs_replay_trips_nothing() -> None:
    bus = InProcessBus()
    for n in range(5):
        bus.publish(rejected(n))
    bus.set_trading_enabled(True)
    actor = RiskActor(SimClock(T0), bus, breaker_config().risk_config())
    for inp in actor.inputs():  # as the NATS binding does: the replay first, then on_start
        bus.subscribe(inp.subject, inp.handler)
    bus.drain()
    actor.on_start()
    assert actor.status()["scopes"] == {}


def test_a_breaker_trip_alerts_as_critical_naming_the_scope() -> None:
    event = TradingStateChanged(id="x", ts_event=T0, enabled=False, reason="the price is 3 s old",
                                scope="market.alice.binance.BTCUSDT", state=HALTED, by="breaker stale_price")
    alert = alert_for(event)
    assert (alert.severity, alert.title) == ("critical", "Trading HALTED: market.alice.binance.BTCUSDT")
    assert "breaker stale_price" in alert.text


# ----------------------------------------------------------------------------- execution


def guarded(**caps: object) -> Config:
    return Config(strategies=[], clients=[
        ClientConfig(id="alice", risk=LimitsConfig(**caps), venues={"binance": VenueConfig(step_size=D("0.001"))}),
        ClientConfig(id="bob", venues={"binance": VenueConfig(step_size=D("0.001"))})])


class Execution(ex.Harness):
    def __init__(self, cfg: Config, guard: bool = False) -> None:
        super().__init__(cfg, guarded=guard)

    def control(self, key: str, value: bytes) -> list[Event]:
        start = len(self.events)
        self.bus.put_control(key, value)
        self.bus.drain()
        return self.events[start:]


def approved(tid: str, qty: str, client: str = "alice", price: str = "100", **extra: object) -> TargetApproved:
    a = ex.approved(tid, qty, **extra)
    t = a.target.__class__(**{**{f: getattr(a.target, f) for f in a.target.__struct_fields__},
                              "client": client, "price": D(price)})
    return TargetApproved(id=tid, ts_event=t.ts_event, target=t)


def test_a_halted_scope_cancels_its_working_orders_and_no_others() -> None:
    h = Execution(guarded())
    h.send(ex.bar(0, "100", "100", "100", "100"))
    h.send(approved("a1", "1", reason="signal"), approved("b1", "1", client="bob"))  # rest until the next bar
    assert len(h.actor.book.open) == 2
    out = h.control("trading_enabled.alice", b"false")
    [cancel] = [e for e in out if isinstance(e, CancelOrder)]
    assert cancel.client == "alice" and cancel.reason.startswith("client.alice halted")
    assert [o.order.client for o in h.actor.book.open.values()] == ["bob"]
    [rejection] = [e for e in h.send(approved("a2", "2")) if isinstance(e, OrderRejected)]
    assert rejection.reason.startswith("trading_state: client.alice is halted")
    assert h.actor.status()["scopes"] == {"switch.alice": HALTED}


def test_a_kill_switch_target_places_reduce_only_orders() -> None:
    h = Execution(guarded())
    h.send(ex.bar(0, "100", "100", "100", "100"), approved("a1", "1"), ex.bar(1, "100", "100", "100", "100"))
    assert h.actor.book.position(ex.KEY) == D(1)
    [order] = [e for e in h.send(approved("flat", "0", reason="kill_switch")) if isinstance(e, SubmitOrder)]
    assert (order.side, order.qty, order.reduce_only) == ("sell", D(1), True)


@pytest.mark.parametrize("caps, tid, qty, price, rule", [
    ({"max_order_notional": D(150)}, "n", "2", "100", "max_order_notional"),  # 2 x 100 (no newest price: the target's)
    ({"price_band_pct": D(5)}, "b", "1", "110", "price_band"),  # newest 100: 10% off
])
def test_the_guard_refuses_what_risk_should_have_and_says_they_disagree(caps, tid, qty, price, rule) -> None:
    h = Execution(guarded(**caps), guard=True)
    h.bus.publish(snapshot("100"))
    out = h.send(ex.bar(0, "100", "100", "100", "100"), approved(tid, qty, price=price))
    [rejection] = [e for e in out if isinstance(e, OrderRejected)]
    [alarm] = [e for e in out if isinstance(e, RiskLimitBreached)]
    assert rejection.reason.startswith(f"guard {rule}: ") and alarm.limit == f"guard.{rule}"
    assert "risk approved" in alarm.detail and not [e for e in out if isinstance(e, SubmitOrder)]
    assert alert_for(alarm).severity == "critical"
    assert [e for e in h.send(approved(f"{tid}2", "1", price="100")) if isinstance(e, SubmitOrder)]  # within


def test_the_guard_caps_the_order_rate_reductions_included() -> None:
    h = Execution(guarded(max_orders_per_s=2), guard=True)
    h.send(ex.bar(0, "100", "100", "100", "100"))
    out = h.send(approved("r1", "1"), approved("r2", "2"), approved("r3", "3"))
    assert [e.target_id for e in out if isinstance(e, SubmitOrder)] == ["r1", "r2"]
    assert [e.limit for e in out if isinstance(e, RiskLimitBreached)] == ["guard.max_orders_per_s"]


def test_without_a_guard_config_execution_reads_no_prices() -> None:
    h = Execution(guarded(max_order_notional=D(1)))
    assert sj.PRICES not in {i.subject for i in h.actor.inputs()}
    assert [e for e in h.send(approved("x", "5")) if isinstance(e, SubmitOrder)]



def test_a_tripped_drawdown_is_kept_in_kv_so_a_restart_does_not_trade_again() -> None:
    from tests.unit.test_risk_caps import position

    alice = ClientConfig(id="alice", strategies=["sma"], capital=D(10000), risk=LimitsConfig(
        max_price_age_s=None, max_drawdown=D(1000), drawdown_action="reducing"))
    config = Config(clients=[alice], strategies=CONFIG.strategies)
    r = Risk(config, persist_trips=True)  # as `bosun run risk` builds it
    r.send(fill("f1", "buy", "1"), position("1", "60000"), snapshot("61000", ts=T0 + 1))  # peak 11000
    out = r.send(snapshot("59900", ts=T0 + 2))  # 1100 down
    assert [(m.scope, m.state, m.by) for m in out if isinstance(m, TradingStateChanged)] == [
        ("client.alice", REDUCING, "max_drawdown")]
    stored = r.bus.kv("$KV.control.state.client.alice").value
    assert stored.startswith(b"reducing max_drawdown: equity 9900 is 1100 below its peak 11000")

    restarted = Risk(config)  # a new process: the peak starts afresh, the state comes back from KV
    restarted.send(("state.client.alice", stored))
    v = restarted.verdict(target("1.5", 2))
    assert breach(v) == "trading_state" and "client.alice is reducing" in v.detail
    restarted.send(("state.client.alice", b"active"))  # bosun resume --client alice
    assert isinstance(restarted.verdict(target("1.5", 3)), TargetApproved)
