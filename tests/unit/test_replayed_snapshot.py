"""A start from a snapshot of what execution's actors rebuild from the order log, plus the log
after it, leaves them exactly as a full replay does: on an order log of real bars traded
(tests/order_logs.py), cut at many points. A part that cannot be used is refused before it
changes anything."""

from __future__ import annotations

import random
from decimal import Decimal as D
from itertools import islice

import msgspec
import pytest

from bosun.apps.backtest import open_data
from bosun.runtime.clock import SimClock
from bosun.runtime.inproc import InProcessBus
from bosun.runtime.replicas import REFUSING, SnapshotError
from proto.events import Bar, Event
from services.execution import replayed
from services.execution.actor import ExecutionActor
from services.execution.venues.shadow_adapter import ShadowAdapter
from tests import order_logs
from tests.datafiles import BTC_1M, data_file
from tests.order_logs import BARS, actors, config, replay, target


@pytest.fixture(scope="module")
def order_log() -> list[Event]:
    return order_logs.order_log()


def test_a_snapshot_plus_the_rest_of_the_log_equals_the_whole_log_replayed(order_log: list[Event]) -> None:
    full = [a.replayed_part() for a in replay(actors(), order_log)]
    n = len(order_log)
    cuts = sorted({0, 1, n // 3, n // 2, n - 1, n, *random.Random(3).sample(range(n), 8)})
    for cut in cuts:
        parts = [a.replayed_part() for a in replay(actors(), order_log[:cut])]
        restored = actors()
        for actor, part in zip(restored, parts):
            actor.restore_replayed(part, cut)
            assert actor.inputs()[0 if not isinstance(actor, ExecutionActor) else 1].after == cut
        replay(restored, order_log[cut:])
        for name, whole, then in zip(("execution", "shadow", "live"), full, (a.replayed_part() for a in restored)):
            assert then == whole, f"{name} differs after a start from the snapshot at entry {cut} of {n}"


def test_the_restored_actors_then_trade_as_the_replayed_ones_do(order_log: list[Event]) -> None:
    """Started on a bus and fed the same next bars and targets, both answer the same."""
    _, bars = open_data([data_file(BTC_1M)])
    later = list(islice(bars, BARS, BARS + 200))
    cut = len(order_log) // 2
    outputs = []
    for from_snapshot in (False, True):
        bus = InProcessBus()
        published: list[Event] = []
        bus.tap(lambda _s, m: published.append(m) if isinstance(m, Event) else None)
        cfg = config().execution_config()
        made = [ExecutionActor(SimClock(later[0].ts_event), bus, cfg), ShadowAdapter(SimClock(later[0].ts_event), bus, cfg)]
        if from_snapshot:
            for actor, part in zip(made, (a.replayed_part() for a in replay(actors()[:2], order_log[:cut]))):
                actor.restore_replayed(part, cut)
            replay(made, order_log[cut:])
        else:
            replay(made, order_log)
        bus.set_trading_enabled(True)
        for actor in made:
            for inp in actor.inputs():
                bus.subscribe(inp.subject, inp.handler)
            actor.on_start()
        for i, bar in enumerate(later):
            bus.publish(bar)
            if i % 7 == 0:
                bus.publish(target(BARS + i, "alice", bar, D(i % 3) / 100, levels=True))
            bus.drain()
        outputs.append([msgspec.msgpack.encode(e) for e in published if type(e) is not Bar])
    assert len(outputs[0]) > 50 and outputs[1] == outputs[0]


def test_a_part_of_another_version_or_for_other_accounts_or_unreadable_is_refused_unchanged(
        order_log: list[Event]) -> None:
    execution, shadow, live = replay(actors(), order_log[:500])
    part = msgspec.msgpack.decode(shadow.replayed_part())
    fresh = actors()
    before = [a.replayed_part() for a in fresh]
    with pytest.raises(SnapshotError, match=f"version {replayed.VERSION + 1}; this build reads version {replayed.VERSION}"):
        fresh[1].restore_replayed(msgspec.msgpack.encode({**part, "version": replayed.VERSION + 1}), 10)
    with pytest.raises(SnapshotError, match="taken for the accounts alice.binance, configured now: "
                                            "alice.binance, bob.binance"):
        fresh[1].restore_replayed(msgspec.msgpack.encode({**part, "accounts": [["alice", "binance"]]}), 10)
    with pytest.raises(SnapshotError, match="unreadable"):
        fresh[0].restore_replayed(execution.replayed_part()[:-7], 10)
    with pytest.raises(SnapshotError, match="unreadable"):
        fresh[2].restore_replayed(b"\x00garbage", 10)
    assert [a.replayed_part() for a in fresh] == before
    assert all(inp.after == 0 for a in fresh for inp in a.inputs())


def test_a_part_holds_its_version_and_decodes_to_its_kind(order_log: list[Event]) -> None:
    execution = replay(actors(), order_log)[0]
    part = replayed.decode(execution.replayed_part(), replayed.ExecutionPart)
    assert part.version == replayed.VERSION and part.book.open == [(o.order, o.remaining)
                                                                   for o in execution.book.open.values()]


def test_a_shadow_part_taken_on_other_terms_is_refused(order_log: list[Event]) -> None:
    """A replay works the orders out on the terms of now (tick, latency): a part of other terms is not that."""
    part = replay(actors(), order_log[:500])[1].replayed_part()
    cheaper = config()
    alice = cheaper.clients[0]
    cheaper = msgspec.structs.replace(cheaper, clients=[msgspec.structs.replace(alice, venues={
        "binance": msgspec.structs.replace(alice.venues["binance"], fee_bps=D(1))}), *cheaper.clients[1:]])
    shadow = ShadowAdapter(SimClock(), REFUSING, cheaper.execution_config())
    with pytest.raises(SnapshotError, match="other terms for the shadow accounts"):
        shadow.restore_replayed(part, 10)
