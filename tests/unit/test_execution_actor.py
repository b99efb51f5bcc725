"""The execution process on the in-process bus (the execution actor and the shadow venues it
sends its commands to): declarative targets, idempotency, the kill switch, restart from the
order log, brackets and end of data. Prices are worked out by hand."""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal as D

from hypothesis import given, settings
from hypothesis import strategies as st

from bosun.runtime.clock import SimClock
from bosun.apps.config import ClientConfig, Config
from services.execution.config import VenueConfig
from bosun.runtime.inproc import InProcessBus
from proto.events import (Bar, CancelAllOrders, CancelOrder, Event, OrderAccepted, OrderCanceled, OrderFilled,
                          OrderModified, OrderRejected, OrdersCanceled, ReconciliationReport, SubmitOrder,
                          TargetApproved, TargetPosition, VenueStateReported)
from services.execution.actor import ExecutionActor
from services.execution.venues.live import LiveAdapter, PlaceOrder
from services.execution.orders import Cancel, OpenOrder, OrderBook, Place, client_order_id, plan
from services.execution import actor as execution_actor
from services.execution.records import Protection, RecordOrderEntry
from services.execution.venues.shadow_adapter import ShadowAdapter

T0 = 1_727_751_600_000_000_000  # 2024-10-01 03:00 UTC
MIN = 60_000_000_000
KEY = ("alice", "binance", "BTCUSDT")


def config(dry_run: bool = False, **venue: object) -> Config:
    settings = {"fee_bps": D(10), "slippage_bps": D(5), "step_size": D("0.001")} | venue
    return Config(dry_run=dry_run, strategies=[], mode="live" if venue.get("kind") == "live" else "shadow",
                  clients=[ClientConfig(id="alice", venues={"binance": VenueConfig(**settings)})])


def bar(i: int, o: str, h: str, low: str, c: str) -> Bar:
    ts_open = T0 + i * MIN
    return Bar(id=f"binance.BTCUSDT.1m.{ts_open}", ts_event=ts_open + MIN, venue="binance", symbol="BTCUSDT",
               interval="1m", ts_open=ts_open, open=D(o), high=D(h), low=D(low), close=D(c), volume=D(1))


def approved(tid: str, qty: str, decided_after_bar: int = 0, **extra: object) -> TargetApproved:
    """A target decided at the close of bar `decided_after_bar`."""
    target = TargetPosition(id=tid, ts_event=T0 + (decided_after_bar + 1) * MIN, client="alice", venue="binance",
                            symbol="BTCUSDT", qty=D(qty), strategy="sma", price=D(100), **extra)
    return TargetApproved(id=tid, ts_event=target.ts_event, target=target)


class Harness:
    """One execution actor on its own bus, recording every event delivered."""

    def __init__(self, cfg: Config | None = None, enabled: bool | None = True,
                 bus: InProcessBus | None = None,
                 before_start: Callable[[ExecutionActor], None] | None = None, guarded: bool = False) -> None:
        self.bus = bus or InProcessBus()
        self.events: list[Event] = []
        self.bus.tap(lambda _subject, msg: self.events.append(msg) if isinstance(msg, Event) else None)
        if enabled is not None:
            self.bus.set_trading_enabled(enabled)
        execution = (cfg or config()).execution_config(guarded=guarded)
        self.actor = ExecutionActor(SimClock(T0), self.bus, execution)
        self.venues = ShadowAdapter(SimClock(T0), self.bus, execution)
        for actor in (self.actor, self.venues):
            if before_start is None:
                self.bus.attach(actor)
            else:  # as the NATS binding does: REPLAY/LATEST inputs caught up, then on_start
                before_start(actor)
                for inp in actor.inputs():
                    self.bus.subscribe(inp.subject, inp.handler)
                actor.on_start()
        self.bus.drain()

    def send(self, *messages: Event) -> list[Event]:
        """Publish, deliver, and return what the actor published in response."""
        start = len(self.events)
        for message in messages:
            self.bus.publish(message)
        self.bus.drain()
        return [e for e in self.events[start:] if e not in messages]

    def kill_switch(self, enabled: bool) -> list[Event]:
        start = len(self.events)
        self.bus.set_trading_enabled(enabled)
        self.bus.drain()
        return self.events[start:]

    def of(self, kind: type) -> list:
        return [e for e in self.events if isinstance(e, kind)]


def kinds(events: list[Event]) -> list[str]:
    return [type(e).__name__ for e in events]


# ----------------------------------------------------------------------------- fills


def test_market_order_fills_at_next_open_with_slippage_and_fee() -> None:
    h = Harness()
    h.send(bar(0, "99", "101", "98", "100"))
    out = h.send(approved("t1", "0.5"))
    assert kinds(out) == ["SubmitOrder", "OrderAccepted"]
    submitted = out[0]
    assert (submitted.side, submitted.qty, submitted.order_type) == ("buy", D("0.5"), "market")
    assert submitted.target_id == "t1"
    assert submitted.id == client_order_id("t1", 1)
    [fill] = h.send(bar(1, "100", "102", "99", "101"))
    # 100 x 1.0005 = 100.05; fee 0.001 x 0.5 x 100.05 = 0.050025
    assert (fill.price, fill.fee, fill.qty, fill.id) == (D("100.05"), D("0.050025"), D("0.5"), f"{submitted.id}.1")
    assert h.actor.book.position(KEY) == D("0.5") and h.actor.book.open == {}
    assert h.actor.status()["fills"] == 1 and h.actor.status()["fills_by_client"] == {"alice": 1}


def test_fill_close_fills_on_the_decision_bar_close() -> None:
    h = Harness(config(fill="close", slippage_bps=D(0)))
    assert kinds(h.send(approved("t1", "1"))) == ["SubmitOrder"]  # decided at bar 0's close: waits for it
    accepted, fill = h.send(bar(0, "99", "101", "98", "100.25"))
    assert accepted.client_order_id == fill.client_order_id
    assert (fill.price, fill.ts_event) == (D("100.25"), T0 + MIN)


def test_target_arriving_after_its_fill_bar_fills_on_that_bar() -> None:
    h = Harness()
    h.send(bar(0, "99", "101", "98", "100"), bar(1, "100", "102", "99", "101"), bar(2, "110", "111", "109", "110"))
    out = h.send(approved("t1", "0.5"))  # decided at bar 0's close: fills at bar 1's open, not bar 2's
    assert kinds(out) == ["SubmitOrder", "OrderAccepted", "OrderFilled"]
    assert out[2].price == D("100.05") and out[2].ts_event == T0 + MIN


def test_rounding_to_step_and_no_order_for_a_dust_difference() -> None:
    h = Harness()
    [submitted] = h.send(approved("t1", "0.12345"))
    assert submitted.qty == D("0.123")
    h.send(bar(1, "100", "101", "99", "100"))
    assert h.send(approved("t2", "0.1234", decided_after_bar=1)) == []  # 0.0004 rounds to 0


# ----------------------------------------------------------------------------- declarative targets


def test_the_same_target_twice_submits_once() -> None:
    h = Harness()
    h.send(approved("t1", "1"))
    assert h.send(approved("t1", "1")) == []
    h.send(bar(1, "100", "101", "99", "100"))
    assert h.send(approved("t1", "1")) == []
    assert len(h.of(SubmitOrder)) == 1 and h.actor.book.position(KEY) == D("1")


def test_target_flip_long_to_short_is_one_sell_of_two() -> None:
    h = Harness()
    h.send(approved("t1", "1"))
    h.send(bar(1, "100", "101", "99", "100"))
    out = h.send(approved("t2", "-1", decided_after_bar=1))
    [submitted] = [e for e in out if isinstance(e, SubmitOrder)]
    assert (submitted.side, submitted.qty) == ("sell", D("2"))
    h.send(bar(2, "100", "101", "99", "100"))
    assert h.actor.book.position(KEY) == D("-1")


def test_a_working_market_order_is_committed_and_a_new_target_trades_the_rest() -> None:
    h = Harness()
    h.send(bar(0, "99", "101", "98", "100"))
    h.send(approved("t1", "1"))  # rests until the next bar, where it fills whatever comes next
    out = h.send(approved("t2", "-0.5"))
    assert kinds(out) == ["SubmitOrder", "OrderAccepted"]
    assert (out[0].side, out[0].qty) == ("sell", D("1.5"))


def test_plan_counts_market_orders_as_done_and_keeps_limit_orders_toward_the_target() -> None:
    def open_order(coid: str, side: str, qty: str, kind: str = "limit") -> OpenOrder:
        return OpenOrder(SubmitOrder(id=coid, ts_event=0, client="a", venue="v", symbol="s", side=side,
                                        qty=D(qty), order_type=kind, limit_price=D(1) if kind == "limit" else None,
                                        target_id="t"), D(qty))

    step = D("0.001")
    assert plan(D(2), D(0), [open_order("b1", "buy", "1")], step) == [Place("buy", D("1.000"))]
    assert plan(D(2), D(0), [open_order("s1", "sell", "1")], step) == [Cancel("s1"), Place("buy", D("2.000"))]
    assert plan(D(1), D(0), [open_order("b3", "buy", "3")], step) == [Cancel("b3"), Place("buy", D("1.000"))]
    assert plan(D(1), D(0), [open_order("b1", "buy", "1")], step) == []
    assert plan(D(0), D(0), [open_order("b1", "buy", "1")], step) == [Cancel("b1")]
    # market orders: never cancelled, counted as position
    assert plan(D(2), D(0), [open_order("s1", "sell", "1", "market")], step) == [Place("buy", D("3.000"))]
    assert plan(D(0), D(0), [open_order("b1", "buy", "1", "market")], step) == [Place("sell", D("1.000"))]
    assert plan(D(1), D(0), [open_order("b1", "buy", "1", "market")], step) == []


def test_client_order_ids_are_deterministic_and_binance_safe() -> None:
    coid = client_order_id("binance.BTCUSDT.t1", 1)
    assert coid == client_order_id("binance.BTCUSDT.t1", 1) != client_order_id("binance.BTCUSDT.t1", 2)
    assert re.fullmatch(r"bs-[0-9a-f]{24}", coid) and len(coid) <= 36


# ----------------------------------------------------------------------------- kill switch, dry run, live


def test_trading_starts_disabled_until_the_kv_says_true() -> None:
    h = Harness(enabled=None)
    [rejected] = h.send(approved("t1", "1"))
    assert isinstance(rejected, OrderRejected) and rejected.reason.startswith("trading disabled: ")


def test_kill_switch_cancels_every_open_order_and_lets_only_reducing_targets_through() -> None:
    h = Harness()
    h.send(approved("t1", "2"))
    h.send(bar(1, "100", "101", "99", "100"))  # long 2
    resting_limit = SubmitOrder(id="bs-limit", ts_event=T0 + 2 * MIN, client="alice", venue="binance",
                                   symbol="BTCUSDT", side="buy", qty=D("1"), order_type="limit",
                                   limit_price=D("90"), target_id="t0")
    h.send(resting_limit)  # a limit order from the order log
    h.send(approved("t2", "4", decided_after_bar=1))  # keeps the limit, buys 1 more at market: rests
    assert len(h.actor.book.open) == 2

    out = h.kill_switch(False)
    assert not [e for e in out if isinstance(e, OrderCanceled)]  # the venue answers the cancel-all at once:
    [canceled] = [e for e in out if isinstance(e, OrdersCanceled)]
    assert sorted(canceled.client_order_ids) == sorted(["bs-limit", client_order_id("t2", 1)])
    assert canceled.reason == "kill_switch" and h.actor.book.open == {}

    [rejected] = h.send(approved("t3", "5", decided_after_bar=1))
    assert isinstance(rejected, OrderRejected) and rejected.reason.startswith("trading disabled: ")
    out = h.send(approved("t4", "0.5", decided_after_bar=1))
    assert [(e.side, e.qty) for e in out if isinstance(e, SubmitOrder)] == [("sell", D("1.5"))]
    assert h.send(bar(2, "80", "81", "79", "80"))[0].qty == D("1.5")  # the cancelled limit at 90 never fills
    assert h.actor.book.position(KEY) == D("0.5") and len(h.of(OrderFilled)) == 2


def test_dry_run_rejects_instead_of_sending() -> None:
    h = Harness(config(dry_run=True))
    out = h.send(approved("t1", "1"))
    assert kinds(out) == ["OrderRejected"] and out[0].reason == "dry run: order not sent"
    assert h.send(bar(1, "100", "101", "99", "100")) == []
    assert h.actor.status()["rejects_by_client"] == {"alice": 1}  # what bosun_order_rejects_total counts


def live(log: list[Event] = ()) -> tuple[InProcessBus, LiveAdapter, list]:
    """A live adapter on its own bus after `log` was replayed to it, and the effects it asked for."""
    bus, effects = InProcessBus(), []
    bus.on_effect(effects.append)
    adapter = LiveAdapter(SimClock(T0), bus, config(kind="live").execution_config())
    for event in log:
        adapter.on_order_log(event)
    bus.attach(adapter)
    return bus, adapter, effects


def test_a_live_venue_gets_the_order_as_an_effect_and_the_shadow_venue_stays_out() -> None:
    h = Harness(config(kind="live"))
    _, adapter, effects = live()
    [submit] = h.send(approved("t1", "1"))
    assert isinstance(submit, SubmitOrder)  # nothing answers it in process: the exchange will
    adapter.on_order_log(submit)
    assert effects == [PlaceOrder(submit)]
    adapter.on_order_log(submit)  # the echo, or a redelivery: placed once
    assert effects == [PlaceOrder(submit)]


def test_after_a_restart_only_unanswered_orders_are_placed_and_each_fill_is_published_once() -> None:
    h = Harness(config(kind="live"))
    [first] = h.send(approved("t1", "1"))
    [second] = h.send(approved("t2", "3"))
    accepted = OrderAccepted(id=first.id, ts_event=T0, client_order_id=first.id, venue_order_id="v1", client="alice",
                             venue="binance", symbol="BTCUSDT")
    bus, adapter, effects = live([first, accepted, second])
    assert effects == [PlaceOrder(second, look_first=True)]  # it may be done on the exchange: looked up first
    fill = OrderFilled(id="binance-7", ts_event=T0, client_order_id=first.id, client="alice", venue="binance",
                       symbol="BTCUSDT", side="buy", qty=D(1), price=D(100), fee=D("0.1"))
    published: list[Event] = []
    bus.subscribe("order.filled.>", published.append)
    adapter.on_fills_found([fill])
    adapter.on_fills_found([fill])  # seen again by the next poll
    bus.drain()
    assert published == [fill]


def test_unknown_venue_is_rejected_with_the_reason() -> None:
    h = Harness()
    target = TargetPosition(id="tx", ts_event=T0, client="alice", venue="bybit", symbol="BTCUSDT", qty=D(1),
                            strategy="sma", price=D(100))
    [rejected] = h.send(TargetApproved(id="tx", ts_event=T0, target=target))
    assert rejected.reason == "client 'alice' has no venue 'bybit' configured"


# ----------------------------------------------------------------------------- restart


def test_restart_rebuilds_position_and_open_orders_from_the_order_log() -> None:
    first = Harness()
    first.send(approved("t1", "1"))
    first.send(bar(1, "100", "101", "99", "100"))
    first.send(approved("t2", "3", decided_after_bar=1))  # buy 2, still working at the "crash"
    log = [e for e in first.events if isinstance(e, (SubmitOrder, OrderAccepted, OrderFilled))]

    second = restart(log)
    assert second.actor.book.positions.by_key == first.actor.book.positions.by_key == {KEY: D("1")}
    assert second.actor.status()["open_orders"] == first.actor.status()["open_orders"]
    assert list(second.actor.book.open) == [client_order_id("t2", 1)]

    assert second.send(approved("t2", "3", decided_after_bar=1)) == []  # the replayed target: no resubmit
    [fill] = second.send(bar(2, "100", "101", "99", "100"))  # the restored working order fills on the new venue
    assert (fill.client_order_id, fill.id, fill.qty) == (client_order_id("t2", 1), f"{client_order_id('t2', 1)}.1",
                                                        D("2"))
    assert second.actor.book.position(KEY) == D("3")
    assert second.send(approved("t1", "1")) == []  # an old target from the log: re-planning it would sell 2


def restart(log: list[Event], cfg: Config | None = None, enabled: bool | None = True,
            venue_log: list[Event] | None = None) -> Harness:
    """A new process: the ORDERS stream replayed to both actors (REPLAY) before they start;
    `venue_log` gives the venue a history of its own, for a venue that disagrees."""
    def catch_up(actor: ExecutionActor | ShadowAdapter) -> None:
        for inp in actor.inputs():
            if inp.subject == "order.>":
                for event in (log if venue_log is None or isinstance(actor, ExecutionActor) else venue_log):
                    inp.handler(event)
    return Harness(cfg, enabled, before_start=catch_up)


def test_restart_with_trading_off_cancels_restored_orders_on_start() -> None:
    first = Harness()
    first.send(bar(0, "99", "101", "98", "100"))
    first.send(approved("t1", "1"))  # working at the "crash"
    h = restart(first.events, enabled=None)  # trading is off until the KV says otherwise
    [cancel] = [e for e in h.events if isinstance(e, CancelAllOrders)]  # no bracket there: one command
    assert ((cancel.client, cancel.venue, cancel.symbol), cancel.reason) == (KEY, "kill_switch")
    [canceled] = [e for e in h.events if isinstance(e, OrdersCanceled)]  # the venue, restored too, answers
    assert canceled.client_order_ids == (client_order_id("t1", 1),) and h.actor.book.open == {}


def test_a_bracket_survives_a_restart_without_placing_anything() -> None:
    first = Harness(config(slippage_bps=D(0)))
    t1 = approved("t1", "1", stop_loss=D("95"))
    first.send(bar(0, "99", "101", "98", "100"), t1)
    first.send(bar(1, "100", "101", "99", "100"))  # long 1 at 100, then the "crash"

    h = restart(first.events, config(slippage_bps=D(0)))
    # Restored, nothing placed: the venue reports what it holds, it agrees, and the audit is told so.
    report, reconciled = h.events
    assert isinstance(report, VenueStateReported)
    assert (report.open_orders, report.position) == ((client_order_id("t1", 2),), D(1))
    assert isinstance(reconciled, ReconciliationReport) and (reconciled.found, reconciled.done) == ((), ())
    assert h.actor.book.position(KEY) == D(1) and h.actor.disagreements == {}
    assert h.send(t1) == []  # the DURABLE redelivery of a handled target is not re-planned
    [fill] = h.send(bar(2, "97", "98", "94", "96"))
    assert (fill.client_order_id, fill.reason, fill.price) == (client_order_id("t1", 2), "stop_loss", D(95))
    assert h.actor.book.position(KEY) == 0


def test_a_bracket_that_fired_stays_spent_after_a_restart() -> None:
    first = Harness(config(slippage_bps=D(0)))
    t1 = approved("t1", "1", stop_loss=D("95"))
    first.send(bar(0, "99", "101", "98", "100"), t1)
    first.send(bar(1, "100", "101", "99", "100"))
    assert first.send(bar(2, "97", "98", "94", "96"))[0].reason == "stop_loss"
    late = OrderFilled(id="manual.1", ts_event=T0 + 3 * MIN, client_order_id="manual", client="alice",
                       venue="binance", symbol="BTCUSDT", side="buy", qty=D(1), price=D(96), fee=D(0))

    h = restart([*first.events, late], config(slippage_bps=D(0)))  # long again by hand: the spent stop must not fire
    assert h.send(bar(3, "90", "91", "80", "85")) == []
    assert h.actor.book.position(KEY) == D(1)


def test_a_command_waits_for_the_market_time_it_was_decided_at() -> None:
    h = Harness()
    h.send(bar(0, "99", "101", "98", "100"))
    early = approved("t1", "1", decided_after_bar=1)  # decided at bar 1's close, before the venue has seen it
    assert kinds(h.send(early)) == ["SubmitOrder"] and h.venues.status()["waiting_commands"] == 1
    out = h.send(bar(1, "100", "101", "99", "100"))  # applied after bar 1, so it does not fill there
    assert kinds(out) == ["OrderAccepted"]
    [fill] = h.send(bar(2, "102", "103", "101", "102"))
    assert fill.price == D("102.051")  # bar 2's open x 1.0005


# ----------------------------------------------------------------------------- stops, end of data


def test_a_target_with_levels_places_an_oco_bracket_that_closes_at_the_stop() -> None:
    h = Harness(config(slippage_bps=D(0)))
    h.send(bar(0, "99", "101", "98", "100"))
    out = h.send(approved("t1", "1", stop_loss=D("95"), take_profit=D("120")))
    entry, sl, tp = [e for e in out if isinstance(e, SubmitOrder)]
    assert (entry.order_type, sl.order_type, tp.order_type) == ("market", "stop_market", "take_profit_market")
    assert (sl.side, sl.stop_price, sl.close_position, sl.reason) == ("sell", D("95"), True, "stop_loss")
    assert (tp.side, tp.stop_price, tp.reason) == ("sell", D("120"), "take_profit")
    assert sl.oco == tp.oco is not None and sl.id == client_order_id("t1", 2)
    h.send(bar(1, "100", "101", "99", "100"))  # long 1 at 100
    fill, canceled = h.send(bar(2, "97", "98", "94", "96"))
    assert (fill.client_order_id, fill.side, fill.qty) == (sl.id, "sell", D("1"))
    assert (fill.price, fill.reason, fill.fee) == (D("95"), "stop_loss", D("0.095"))
    assert (canceled.client_order_id, canceled.reason) == (tp.id, f"oco: {sl.id} filled")
    assert h.actor.book.position(KEY) == 0 and h.actor.book.open == {}
    assert h.send(approved("t1", "1", stop_loss=D("95"))) == []  # the same target is not re-applied
    late = OrderFilled(id="manual.1", ts_event=T0 + 3 * MIN, client_order_id="manual", client="alice",
                       venue="binance", symbol="BTCUSDT", side="buy", qty=D(1), price=D(96), fee=D(0))
    h.send(late)  # long again, by a fill from the order log
    assert h.send(bar(3, "90", "130", "80", "90")) == []  # spent: neither stop nor take-profit again
    assert h.actor.book.position(KEY) == D(1)


def test_a_fill_that_leaves_the_position_flat_removes_its_bracket() -> None:
    h = Harness(config(slippage_bps=D(0)))
    h.send(bar(0, "99", "101", "98", "100"))
    h.send(approved("t1", "1", stop_loss=D("95"), take_profit=D("120")))
    h.send(bar(1, "100", "101", "99", "100"))  # long 1 at 100, its bracket working
    assert len(h.actor.book.open_orders(KEY, protective=True)) == 2
    by_hand = OrderFilled(id="manual.1", ts_event=T0 + 2 * MIN + 1, client_order_id="manual", client="alice",
                          venue="binance", symbol="BTCUSDT", side="sell", qty=D(1), price=D(101), fee=D(0),
                          reason="manual")
    out = h.send(by_hand)
    cancels = [e for e in out if isinstance(e, CancelOrder)]
    assert {c.reason for c in cancels} == {"bracket removed: the position is closed"} and len(cancels) == 2
    # Decided at the fill's market time: the venue carries them out when its market data gets there,
    # before the next bar, which would have triggered both.
    assert kinds(h.send(bar(2, "90", "130", "80", "90"))) == ["OrderCanceled", "OrderCanceled"]
    assert h.actor.book.open == {}


def test_a_new_target_replaces_the_bracket_and_the_kill_switch_keeps_it() -> None:
    h = Harness(config(slippage_bps=D(0)))
    h.send(bar(0, "99", "101", "98", "100"))
    h.send(approved("t1", "1", stop_loss=D("95")))
    h.send(bar(1, "100", "101", "99", "100"))
    out = h.send(approved("t2", "1", decided_after_bar=1, stop_loss=D("97")))
    [cancel] = [e for e in out if isinstance(e, CancelOrder)]
    assert (cancel.client_order_id, cancel.reason) == (client_order_id("t1", 2), "bracket replaced by target t2")
    assert [o.order.stop_price for o in h.actor.book.open.values()] == [D("97")]
    assert not [e for e in h.kill_switch(False) if isinstance(e, CancelOrder)]  # a bracket only ever closes
    assert h.send(bar(2, "98", "98", "96", "97"))[-1].price == D(97)


def test_the_kill_switch_sends_one_cancel_all_per_market_and_single_cancels_beside_a_bracket() -> None:
    h = Harness(config(slippage_bps=D(0)))
    h.send(bar(0, "99", "101", "98", "100"))
    h.send(approved("t1", "1", stop_loss=D("95")))
    h.send(bar(1, "100", "101", "99", "100"))  # long 1, its bracket working
    limits = [SubmitOrder(id=f"bs-limit-{n}", ts_event=T0 + 2 * MIN, client="alice", venue="binance",
                          symbol="BTCUSDT", side="buy", qty=D("1"), order_type="limit", limit_price=D("90"),
                          target_id="t0") for n in range(3)]
    h.send(*limits)
    out = h.kill_switch(False)
    # beside the bracket, each limit alone (a cancel-all would take the stop with it)
    assert sorted(e.client_order_id for e in out if isinstance(e, CancelOrder)) == [o.id for o in limits]
    assert not [e for e in out if isinstance(e, CancelAllOrders)]
    assert [o.order.order_type for o in h.actor.book.open.values()] == ["stop_market"]

    h = Harness()
    h.send(bar(0, "99", "101", "98", "100"))
    h.send(*limits)
    out = h.kill_switch(False)
    [cancel_all] = [e for e in out if isinstance(e, CancelAllOrders)]
    assert ((cancel_all.client, cancel_all.venue, cancel_all.symbol), cancel_all.reason) == (KEY, "kill_switch")
    assert not [e for e in out if isinstance(e, CancelOrder)]
    [canceled] = [e for e in out if isinstance(e, OrdersCanceled)]  # one answer naming them all
    assert canceled.client_order_ids == tuple(o.id for o in limits) and not h.of(OrderCanceled)
    assert canceled.id == f"{cancel_all.id}.canceled.1" and h.actor.book.open == {}
    h.kill_switch(True)
    again = h.kill_switch(False)  # nothing open: nothing sent
    assert not [e for e in again if isinstance(e, (CancelAllOrders, CancelOrder))]


def test_the_book_sums_the_market_orders_in_flight_and_lists_only_the_others() -> None:
    def submit(coid: str, side: str, qty: str, order_type: str = "market") -> SubmitOrder:
        return SubmitOrder(id=coid, ts_event=T0, client="alice", venue="binance", symbol="BTCUSDT", side=side,
                           qty=D(qty), order_type=order_type, limit_price=D("90") if order_type == "limit" else None,
                           target_id=f"t-{coid}")

    def answer(kind: type, coid: str, **fields: object) -> Event:
        return kind(id=f"{coid}.{kind.__name__}", ts_event=T0, client_order_id=coid, client="alice",
                    venue="binance", symbol="BTCUSDT", **fields)

    book = OrderBook()
    for n in range(300):  # market orders whose fills have not come back yet (a lagging order log)
        book.apply(submit(f"m{n}", "buy" if n % 3 else "sell", "0.01"))
    book.apply(submit("l1", "buy", "0.1", "limit"))
    assert book.committed(KEY) == D("0.01") * 100 and [o.order.id for o in book.open_orders(KEY)] == ["l1"]
    book.apply(answer(OrderFilled, "m1", side="buy", qty=D("0.004"), price=D(100), fee=D(0)))  # partly
    book.apply(answer(OrderFilled, "m0", side="sell", qty=D("0.01"), price=D(100), fee=D(0)))  # wholly
    book.apply(answer(OrderCanceled, "m2", reason="test"))
    book.apply(answer(OrderModified, "m4", qty=D("0.03")))
    assert book.committed(KEY) == D("0.01") * 100 + D("0.01") - D("0.004") - D("0.01") + D("0.02")
    assert book.committed(KEY) == sum((o.signed_remaining for o in book.open.values()
                                       if o.order.order_type == "market"), D(0))
    # a target then costs one step, not one per order in flight: 1.2 wanted, -0.006 held, 1.016 in
    # flight, the limit's 0.1 kept, 0.09 to buy
    assert plan(D("1.2"), book.position(KEY) + book.committed(KEY), book.open_orders(KEY), D("0.001")) == [
        Place("buy", D("0.090"))]


def test_stop_loss_fills_at_the_open_when_the_bar_gaps_through() -> None:
    h = Harness(config(slippage_bps=D(0)))
    h.send(bar(0, "99", "101", "98", "100"), approved("t1", "1", stop_loss=D("95")))
    h.send(bar(1, "100", "101", "99", "100"))
    fill = h.send(bar(2, "93", "94", "92", "93"))[-1]
    assert (fill.price, fill.reason) == (D("93"), "stop_loss")


def test_take_profit_closes_a_short() -> None:
    h = Harness()
    h.send(bar(0, "99", "101", "98", "100"), approved("t1", "-2", take_profit=D("90")))
    h.send(bar(1, "100", "101", "99", "100"))  # short 2 at 99.95
    fill = h.send(bar(2, "95", "96", "89", "92"))[-1]
    assert (fill.side, fill.qty, fill.reason) == ("buy", D("2"), "take_profit")
    assert fill.price == D("90.045")  # 90 x 1.0005: a stop is a market order and slips
    assert h.actor.book.position(KEY) == 0


def test_end_of_data_closes_at_the_last_close() -> None:
    h = Harness()
    h.send(approved("t1", "1"))
    h.send(bar(1, "100", "101", "99", "100"), bar(2, "100", "105", "99", "104"))
    out = h.send(approved("t-end", "0", decided_after_bar=2, reason="end_of_data"))
    assert kinds(out) == ["SubmitOrder", "OrderAccepted", "OrderFilled"]
    assert out[0].order_type == "market_on_close"
    fill = out[-1]
    # 104 x (1 - 0.0005) = 103.948; fee 0.001 x 1 x 103.948
    assert (fill.side, fill.qty, fill.price, fill.fee, fill.reason) == ("sell", D("1"), D("103.948"),
                                                                         D("0.103948"), "end_of_data")
    assert h.actor.book.position(KEY) == 0 and h.actor.status()["positions"] == {}


def test_a_stop_never_sells_more_than_the_position_whatever_the_step() -> None:
    h = Harness(config(slippage_bps=D(0), step_size=D("0.5")))
    almost_one = D("0.9999999999999999999999999999")  # 28 digits: twice it does not fit the Decimal context
    h.send(OrderFilled(id="manual.1", ts_event=T0, client_order_id="manual", client="alice",
                       venue="binance", symbol="BTCUSDT", side="buy", qty=almost_one, price=D(100), fee=D(0)))
    h.send(bar(1, "99", "101", "98", "100"))
    out = h.send(approved("t1", "1", stop_loss=D("95")))  # 1 - almost_one is dust on a 0.5 step: no entry
    assert [e.order_type for e in out if isinstance(e, SubmitOrder)] == ["stop_market"]
    fill = h.send(bar(2, "97", "98", "94", "96"))[0]
    assert (fill.reason, fill.qty) == ("stop_loss", D("0.5"))  # not 1.0: more than is held


def test_stop_ignores_the_range_of_a_bar_that_opened_before_the_target() -> None:
    h = Harness(config(fill="close", slippage_bps=D(0)))
    h.send(approved("t1", "1", stop_loss=D("95")))  # decided at bar 0's close
    [fill] = h.send(bar(0, "100", "101", "90", "100"))[-2:-1]  # entered at its close: its low came before us
    assert (fill.price, fill.reason) == (D("100"), "signal") and h.actor.book.position(KEY) == D(1)
    assert h.send(bar(1, "99", "99", "94", "96"))[-1].reason == "stop_loss"


def test_a_new_target_without_levels_disarms_the_previous_stop() -> None:
    h = Harness(config(slippage_bps=D(0)))
    h.send(bar(0, "99", "101", "98", "100"), approved("t1", "1", stop_loss=D("95")))
    h.send(bar(1, "100", "101", "99", "100"))  # long 1
    h.send(approved("t2", "2", decided_after_bar=1))  # no levels: the stop of t1 no longer applies
    h.send(bar(2, "100", "101", "99", "100"))  # long 2
    assert h.send(bar(3, "90", "91", "80", "85")) == []  # through 95, and nothing happens
    h.send(approved("t3", "1", decided_after_bar=3, take_profit=D("120")))  # armed again
    h.send(bar(4, "85", "86", "84", "85"))  # down to 1
    assert h.send(bar(5, "110", "121", "109", "115"))[-1].reason == "take_profit"
    assert h.actor.book.position(KEY) == 0


def test_reconciliation_cancels_what_no_intent_explains_and_closes_what_the_venue_does_not_hold() -> None:
    first = Harness()
    first.send(bar(0, "99", "101", "98", "100"), approved("t1", "1"))  # a market order working at the crash
    stray = SubmitOrder(id="by-hand", ts_event=T0, client="alice", venue="binance", symbol="BTCUSDT", side="sell",
                        qty=D("0.5"), order_type="limit", limit_price=D("200"), target_id="manual")
    ours = [e for e in first.events if not isinstance(e, SubmitOrder) or e.target_id == "t1"]
    h = restart(ours, venue_log=[stray, *[e for e in ours if not isinstance(e, SubmitOrder)]])
    [cancel] = h.of(CancelOrder)
    assert (cancel.client_order_id, cancel.reason) == ("by-hand", "reconciliation: no intent explains it")
    [closed, answered] = h.of(OrderCanceled)  # ours, unknown to the venue; then the stray, cancelled there
    assert (closed.client_order_id, closed.reason) == (client_order_id("t1", 1),
                                                      "reconciliation: venue binance does not hold it")
    assert answered.client_order_id == "by-hand" and h.actor.book.open == {}


def test_a_report_of_an_earlier_run_in_the_log_changes_nothing() -> None:
    old = VenueStateReported(id="binance.alice.BTCUSDT.1", ts_event=T0 - 1, client="alice", venue="binance",
                             symbol="BTCUSDT", open_orders=("gone-long-ago",), position=D(3))
    h = restart([old])
    assert h.of(CancelOrder) == [] and h.actor.disagreements == {}


def test_a_position_the_venue_disagrees_with_is_shown_in_status() -> None:
    first = Harness()
    first.send(bar(0, "99", "101", "98", "100"), approved("t1", "1"), bar(1, "100", "101", "99", "100"))
    h = restart([e for e in first.events if not isinstance(e, OrderFilled)], venue_log=first.events)
    assert h.actor.status()["position_disagreements"] == {"alice.binance.BTCUSDT": "execution 0, venue 1.000"}


def test_a_cancel_within_the_cancel_latency_loses_the_race_to_a_fill() -> None:
    for latency_ms, filled in ((0, False), (120_000, True)):  # none, or two bars long
        h = Harness(config(slippage_bps=D(0), cancel_latency_ms=D(latency_ms)))
        h.send(bar(0, "100", "101", "99", "100"))
        resting = SubmitOrder(id="l1", ts_event=T0 + MIN, client="alice", venue="binance", symbol="BTCUSDT",
                              side="buy", qty=D(1), order_type="limit", limit_price=D(98), target_id="manual",
                              market_ns=T0 + MIN)
        cancel = CancelOrder(id="l1.cancel", ts_event=T0 + MIN, client_order_id="l1", client="alice",
                             venue="binance", symbol="BTCUSDT", reason="by hand", market_ns=T0 + MIN)
        h.send(resting, cancel)
        h.send(bar(1, "99", "100", "97", "98"))  # trades through 98
        assert bool(h.of(OrderFilled)) is filled, latency_ms
        assert bool(h.of(OrderCanceled)) is not filled, latency_ms


def unprotected_after_restart(on_unprotected: str, held: D = D(1)
                              ) -> tuple[ExecutionActor, list[Event], bool | None]:
    """Long 1 with a stop at 95 known from the store, and a venue that reports no stop working and
    `held` in the account."""
    bus, seen = InProcessBus(), []
    bus.tap(lambda _subject, msg: seen.append(msg) if isinstance(msg, Event) else None)
    bus.set_trading_enabled(True)
    actor = ExecutionActor(SimClock(T0), bus, config(on_unprotected=on_unprotected).execution_config(),
                           protection={KEY: Protection("t1", D(95), None)})
    actor.on_order_event(OrderFilled(id="binance-1", ts_event=T0, client_order_id=client_order_id("t1", 1),
                                     client="alice", venue="binance", symbol="BTCUSDT", side="buy", qty=D(1),
                                     price=D(100), fee=D(0)))
    bus.attach(actor)
    bus.publish(VenueStateReported(id="binance.alice.BTCUSDT.9", ts_event=T0 + 9, client="alice", venue="binance",
                                   symbol="BTCUSDT", open_orders=(), position=held, fills_found=("binance-1",)))
    bus.drain()
    return actor, seen[1:], bus.kv("$KV.control.trading_enabled")


def test_a_position_the_venue_no_longer_holds_gets_no_stop_on_reconciliation() -> None:
    """A leg closed it while execution was down (on spot, what the book keeps beside is fee dust)."""
    for mode in ("rearm", "flatten", "halt"):
        _, out, enabled = unprotected_after_restart(mode, held=D(0))
        [report] = [e for e in out if isinstance(e, ReconciliationReport)]
        assert not [e for e in out if isinstance(e, SubmitOrder)] and enabled is True, mode
        assert report.done == () and report.found[-1] == "position: execution 1, venue 0", mode


def test_a_position_that_lost_its_stop_is_rearmed_on_reconciliation() -> None:
    _, out, enabled = unprotected_after_restart("rearm")
    [stop, report] = [e for e in out if isinstance(e, (SubmitOrder, ReconciliationReport))]
    assert (stop.order_type, stop.side, stop.stop_price, stop.close_position) == ("stop_market", "sell", D(95), True)
    assert stop.target_id == "t1.rearm.binance.alice.BTCUSDT.9" and enabled is True
    assert report.found == ("1 fills missed while down: binance-1",
                            "position 1 without its protective orders (levels of target t1)")
    assert (report.done, report.why) == (("re-armed stop_loss 95, take_profit None",),
                                         ("on_unprotected = 'rearm' for venue binance",))


def test_a_position_that_lost_its_stop_is_flattened_on_reconciliation() -> None:
    actor, out, _ = unprotected_after_restart("flatten")
    [flatten, report] = [e for e in out if isinstance(e, (SubmitOrder, ReconciliationReport))]
    assert (flatten.order_type, flatten.side, flatten.qty, flatten.reduce_only) == ("market", "sell", D(1), True)
    assert report.done == ("flatten 1 at market",) and actor.protection == {}


def test_a_position_that_lost_its_stop_halts_trading_on_reconciliation() -> None:
    _, out, enabled = unprotected_after_restart("halt")
    assert not [e for e in out if isinstance(e, SubmitOrder)] and enabled is False
    [report] = [e for e in out if isinstance(e, ReconciliationReport)]
    assert report.done == ("halt trading",)


def test_a_durable_replay_records_only_its_tail_once_on_start(monkeypatch) -> None:
    monkeypatch.setattr(execution_actor, "REPLAY_TAIL", 2)
    bus, asked = InProcessBus(), []
    bus.on_effect(asked.append)
    actor = ExecutionActor(SimClock(T0), bus, config().execution_config(), durable=True)
    log = [SubmitOrder(id=f"o{i}", ts_event=T0, client="alice", venue="binance", symbol="BTCUSDT", side="buy",
                       qty=D(1), order_type="market", target_id=f"t{i}") for i in range(3)]
    for entry in log:  # the replay: recorded when it first came, nothing asked of the store now
        actor.on_order_event(entry)
    assert asked == []
    bus.attach(actor)  # on_start
    assert [(e.entry.id, e.remaining) for e in asked if isinstance(e, RecordOrderEntry)] == [("o1", D(1)), ("o2", D(1))]


# ----------------------------------------------------------------------------- converging on the newest target


def test_a_superseded_order_that_fills_before_its_cancel_lands_is_traded_back_toward_the_newest_target() -> None:
    for latency_ms, fills in ((0, []), (120_000, [("buy", D(1)), ("sell", D(1))])):  # none, or two bars long
        h = Harness(config(slippage_bps=D(0), entry="limit", cancel_latency_ms=D(latency_ms)))
        h.send(bar(0, "100", "101", "99", "100"))
        h.send(approved("t1", "1"))  # a limit buy at 100
        h.send(approved("t2", "0"))  # flat again, at the same close: the buy is cancelled
        h.send(bar(1, "100", "100", "97", "98"))  # trades through 100: within the latency it fills
        h.send(bar(2, "99", "102", "99", "101"))  # the sell planned after that fill trades here
        h.send(bar(3, "101", "103", "100", "102"))  # nothing more to do: no order storm
        assert [(f.side, f.qty) for f in h.of(OrderFilled)] == fills, latency_ms
        assert h.actor.book.position(KEY) == 0
        submits = h.of(SubmitOrder)
        assert len(submits) == 1 + len(fills) // 2, latency_ms
        if fills:
            fill = h.of(OrderFilled)[0]
            again = submits[-1]
            assert again.id == client_order_id(f"t2.{fill.client_order_id}", 1)
            assert (again.side, again.target_id, again.market_ns) == ("sell", "t2", fill.ts_event)


def execution_alone(cfg: Config) -> tuple[InProcessBus, ExecutionActor, list[Event]]:
    """Execution without a venue: the test answers for it, in the order NATS may deliver."""
    bus = InProcessBus()
    seen: list[Event] = []
    bus.tap(lambda _subject, msg: seen.append(msg) if isinstance(msg, Event) else None)
    bus.set_trading_enabled(True)
    actor = ExecutionActor(SimClock(T0), bus, cfg.execution_config())
    bus.attach(actor)
    bus.drain()
    return bus, actor, seen


def filled(order: SubmitOrder, qty: str, ts: int, n: int = 1) -> OrderFilled:
    return OrderFilled(id=f"{order.id}.f{n}", ts_event=ts, client_order_id=order.id, client="alice", venue="binance",
                       symbol="BTCUSDT", side=order.side, qty=D(qty), price=D(100), fee=D(0))


def test_fills_reaching_execution_after_the_target_that_cancels_their_order_are_planned_again_once() -> None:
    for last in ("fill", "cancel"):  # the order fills whole, or in part before its cancel lands
        bus, actor, seen = execution_alone(config(entry="limit"))
        bus.publish(approved("t1", "1"))
        bus.drain()
        (buy,) = [e for e in seen if isinstance(e, SubmitOrder)]
        bus.publish(approved("t2", "-1", decided_after_bar=2))  # planned while the fills are on their way
        bus.drain()
        sells = [e for e in seen if isinstance(e, SubmitOrder) and e.side == "sell"]
        assert [s.qty for s in sells] == [D(1)] and any(isinstance(e, CancelOrder) for e in seen)
        decided = T0 + 3 * MIN
        parts = ("0.4", "0.6") if last == "fill" else ("0.4", "0.1")
        for n, qty in enumerate(parts, 1):  # filled before t2, in parts
            bus.publish(filled(buy, qty, T0 + 2 * MIN + n, n))
            bus.drain()
        if last == "cancel":
            assert len([e for e in seen if isinstance(e, SubmitOrder)]) == 2, "nothing before the order is closed"
            bus.publish(OrderCanceled(id="c", ts_event=T0, client_order_id=buy.id, client="alice", venue="binance",
                                      symbol="BTCUSDT", reason="superseded"))
            bus.drain()
        again = [e for e in seen if isinstance(e, SubmitOrder) and e.side == "sell"][1:]
        # one order for what it filled, decided when the target and the fills were both known: at t2's time,
        # as a backtest would
        total = sum(D(q) for q in parts)
        assert [(s.qty, s.market_ns, s.target_id) for s in again] == [(total, decided, "t2")]
        assert actor.book.position(KEY) + actor.book.working(KEY) == D(-1)
        for n, order in enumerate([*sells, *again], 10):  # the newest target's own fills plan nothing
            bus.publish(filled(order, str(order.qty), decided + MIN, n))
            bus.drain()
        assert len([e for e in seen if isinstance(e, SubmitOrder)]) == 3
        assert actor.book.position(KEY) == D(-1) and not actor.book.open_orders(KEY)


def test_a_fill_of_an_order_the_kill_switch_or_a_bracket_cancelled_plans_nothing() -> None:
    bus, actor, seen = execution_alone(config(entry="limit"))
    bus.publish(approved("t1", "1"))
    bus.drain()
    (buy,) = [e for e in seen if isinstance(e, SubmitOrder)]
    bus.set_trading_enabled(False)  # cancels the buy: it is the newest target's own order
    bus.drain()
    bus.publish(filled(buy, "0.5", T0 + 2 * MIN))
    bus.drain()
    assert len([e for e in seen if isinstance(e, SubmitOrder)]) == 1
    assert not [e for e in seen if isinstance(e, OrderRejected)]


@settings(max_examples=200, deadline=None)
@given(latency_bars=st.sampled_from([0, 1, 3]), steps=st.lists(st.one_of(
    st.tuples(st.just("target"), st.sampled_from(["-2", "-1", "-0.5", "0", "0.5", "1", "2"])),
    st.tuples(st.just("bar"), st.sampled_from(["97", "99", "100", "101"]), st.sampled_from(["99", "100", "101", "103"])),
), max_size=30))
def test_orders_superseded_in_any_race_end_on_the_newest_target_without_an_order_storm(latency_bars, steps) -> None:
    """Targets superseding limit orders that fill before, while or after their cancels land (cancel
    latency of 0 to 3 bars; a bar can cross every limit, so a replacement can fill before its own
    cancel too): once the cancels have landed, the position and the orders still meant to trade add
    up to the newest target, and the targets cost at most 3 orders each (1,000 examples found none
    above)."""
    h = Harness(config(slippage_bps=D(0), entry="limit", cancel_latency_ms=D(latency_bars * 60_000)))
    i, targets, newest = 0, 0, None
    h.send(bar(i, "100", "100", "100", "100"))
    for kind, *args in steps:
        if kind == "target":
            targets += 1
            newest = D(args[0])
            h.send(approved(f"t{targets}", args[0], decided_after_bar=i))
        else:
            i += 1
            low, high = args
            h.send(bar(i, "100", str(max(D(high), D(100))), str(min(D(low), D(100))), "100"))
    for _ in range(latency_bars + 1):  # bars that cross nothing, while the last cancels land
        i += 1
        h.send(bar(i, "100", "100", "100", "100"))
    book = h.actor.book
    assert not [o for o in book.open.values() if o.canceling], "every cancel has landed"
    if newest is not None:
        assert book.position(KEY) + book.working(KEY) == newest
    assert len(h.of(SubmitOrder)) <= 3 * targets
