"""Execution's start from a snapshot on a real nats-server: the replicas store snapshots of what
execution's actors rebuild from ORDERS in the object store as the log grows; actors restored
from the newest and fed the rest of ORDERS by the NATS binding are where a full replay leaves
them, having read only the rest. A snapshot that cannot be trusted (corrupt, of an unknown
version, of another log) is refused, naming why, and the start replays the whole log. And the
live restart's kill -9 between submit and answer, with the restart reading a snapshot that holds
the unanswered order: one order on the exchange, each fill booked once."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import nats
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext

from bosun.apps import control
from bosun.runtime import replicas, snapshots, telemetry
from bosun.runtime.clock import SimClock
from bosun.runtime.embedded import EmbeddedNats
from bosun.runtime.nats_binding import NatsBinding
from bosun.runtime.provision import provision
from bosun.runtime.replicas import Replicas
from bosun.runtime.snapshots import SnapshotStore
from proto import codec
from proto import subjects as sj
from proto import events as ev
from proto.events import Event
from services.execution.actor import ExecutionActor
from services.execution.orders import client_order_id
from services.execution.venues.live import LiveAdapter
from services.execution.venues.shadow_adapter import ShadowAdapter
from tests import order_logs
from tests.builders import publish, service_status, target, until_trading
from tests.liveplatform import SYMBOL, live_platform, until
from tests.natshelp import stored_count
from tests.processes import kill_9

EVERY = 1_000
WAIT_S = 120.0  # each step; the whole test may take several on a loaded machine
pytestmark = pytest.mark.timeout(400)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[tuple[Client, JetStreamContext]]:
    """A server of its own: the test reads ORDERS whole."""
    with EmbeddedNats(tmp_path / "nats") as running:
        nc = await nats.connect(running.url)
        try:
            js = nc.jetstream()
            await provision(js)
            yield nc, js
        finally:
            await nc.close()


_SENT = itertools.count()


async def publish_all(js: JetStreamContext, entries: list[Event]) -> None:
    """Each entry stored once, in order: one publish at a time, its ack awaited with a timeout, sent
    again under its Nats-Msg-Id if the ack does not come (nats-py's publish_async futures can wait
    forever: a refusal never fails them, nats-io/nats.py#985, and a CI run hung there for 400 s)."""
    for entry in entries:
        msg_id = f"entry-{next(_SENT)}"  # one per publish, not per event: the log holds repeats on purpose
        for attempt in range(5):
            try:
                await js.publish(sj.subject_for(entry), codec.encode(entry), timeout=5,
                                 headers={"Nats-Msg-Id": msg_id})
                break
            except nats.errors.TimeoutError:
                continue
        else:
            raise AssertionError(f"{msg_id}: no ack from ORDERS after 5 tries of 5 s")


class _AtStart:
    """Mixed into each actor: its part recorded at on_start, which does nothing else here (it would
    publish into the log the next run reads)."""

    def on_start(self) -> None:
        self.at_start = self.replayed_part()  # type: ignore[attr-defined]


class Execution(_AtStart, ExecutionActor):
    pass


class Shadow(_AtStart, ShadowAdapter):
    pass


class Live(_AtStart, LiveAdapter):
    pass


async def started(nc: Client, service: str, envelope: replicas.Envelope | None) -> tuple[list[bytes], int]:
    """Execution's actors run on a binding until they are ready (every REPLAY input caught up): their
    parts then, and how many ORDERS entries the binding handed them."""
    binding = NatsBinding(nc, service)
    cfg = order_logs.config().execution_config()
    made = [Execution(SimClock(), binding.outbox, cfg, durable=True), Shadow(SimClock(), binding.outbox, cfg),
            Live(SimClock(), binding.outbox, cfg)]
    for actor in made:
        replicas.restore(actor, envelope)
    handed = telemetry.MESSAGES_IN.labels(service, sj.ORDERS)
    ready = asyncio.Event()
    running = asyncio.create_task(binding.run(made[0], ready=ready, also=made[1:]))
    try:
        await asyncio.wait_for(ready.wait(), WAIT_S)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    return [a.at_start for a in made], int(handed._value.get())


async def snapshot_at(js: JetStreamContext, store: SnapshotStore, seq: int) -> replicas.Envelope:
    """The stored snapshot once it covers `seq` (polled: it is written in the background)."""
    for _ in range(int(WAIT_S / 0.05)):
        envelope = await store.load("ORDERS")
        if envelope is not None and envelope.seq >= seq:
            return envelope
        await asyncio.sleep(0.05)
    raise AssertionError(f"no snapshot at sequence {seq} within {WAIT_S} s")


async def test_a_start_from_the_snapshot_reads_only_the_rest_and_ends_where_a_full_replay_does(server) -> None:
    nc, js = server
    log = order_logs.order_log()
    first, rest = log[:len(log) // 2], log[len(log) // 2:]
    await publish_all(js, first)
    store = SnapshotStore(js)
    kept = Replicas("ORDERS", sj.ORDERS, order_logs.actors)
    keeping = asyncio.create_task(snapshots.keep(js, store, kept, sj.ORDERS, EVERY, 0.0))
    try:
        await snapshot_at(js, store, EVERY)
        await publish_all(js, rest[:-700])  # snapshots go on as the log grows
        newest = await snapshot_at(js, store, len(first) + EVERY)
    finally:
        keeping.cancel()
        await asyncio.gather(keeping, return_exceptions=True)
    await publish_all(js, rest[-700:])  # and entries come after the newest
    assert newest.seq <= len(log) - 700 and set(newest.parts) == {"execution", "shadow", "live"}

    whole, read_whole = await started(nc, "exec-whole", None)
    restored, read_rest = await started(nc, "exec-snapshot", newest)
    assert (read_whole, read_rest) == (len(log), len(log) - newest.seq)
    for name, a, b in zip(("execution", "shadow", "live"), whole, restored):
        assert a == b, f"{name}: the start from the snapshot differs from the full replay"


async def test_a_corrupt_unknown_or_foreign_snapshot_is_refused_naming_why_and_the_log_replayed_whole(
        server, caplog: pytest.LogCaptureFixture) -> None:
    nc, js = server
    log = order_logs.order_log()[:1_500]
    await publish_all(js, log)
    store = SnapshotStore(js)
    kept = Replicas("ORDERS", sj.ORDERS, order_logs.actors)
    for entry_seq, entry in enumerate(log[:1_200], 1):
        kept.feed(entry_seq, codec.encode(entry))
    good = kept.envelope()
    assert good.seq == 1_200
    await store.save(good)
    assert (await store.load("ORDERS")) == good

    raw = replicas.encode(good)
    bucket = await js.object_store(snapshots.BUCKET)
    cases = {
        "unreadable": raw[: len(raw) // 2],
        "version 2; this build reads": msgspec.msgpack.encode({**msgspec.msgpack.decode(raw), "version": 2}),
        "not the log it was taken from": replicas.encode(msgspec.structs.replace(good, entry=b"x" * 16)),
        "which the stream does not hold": replicas.encode(msgspec.structs.replace(good, seq=10**9)),
    }
    for why, data in cases.items():
        await bucket.put("ORDERS", data)
        await refused(store, why, caplog)

    # Bytes changed in the store (its meta names another digest), or chunks gone.
    await store.save(good)
    info = (await bucket.get_info("ORDERS")).as_dict()
    meta = f"$O.{snapshots.BUCKET}.M.{base64.urlsafe_b64encode(b'ORDERS').decode()}"
    await js.publish(meta, json.dumps({**info, "digest": "SHA-256=" + base64.urlsafe_b64encode(b"x" * 32).decode()})
                     .encode(), headers={"Nats-Rollup": "sub"})
    await refused(store, "corrupt: its size or SHA-256 is not the one the object store holds", caplog)
    await store.save(good)
    await js.purge_stream(snapshots.STREAM, subject=f"$O.{snapshots.BUCKET}.C.{(await bucket.get_info('ORDERS')).nuid}")
    await refused(store, f"0 of its {len(raw)} bytes found in the object store", caplog)

    parts, read = await started(nc, "exec-refused", await snapshots.load(store, "ORDERS"))
    whole = [a.replayed_part() for a in order_logs.replay(order_logs.actors(), log)]
    assert read == len(log) and parts == whole


async def refused(store: SnapshotStore, why: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="bosun.runtime.snapshots"):
        assert await snapshots.load(store, "ORDERS") is None
    assert any("snapshot of ORDERS refused" in r.message and why in r.message for r in caplog.records), \
        [r.message for r in caplog.records]


async def test_kill_9_between_submit_and_answer_then_a_start_from_the_snapshot_places_nothing_twice(
        tmp_path: Path, fresh_database_url: str) -> None:
    """The live restart test's kill -9, with the unanswered order in the snapshot the restart reads:
    restored unanswered, it is looked up on the exchange and adopted, not placed again."""
    async with live_platform(tmp_path, fresh_database_url,
                             more_config="[services.execution]\nsnapshot_every = 1\n") as live:
        js = live.nc.jetstream()
        store = SnapshotStore(js)
        await control.set_trading(live.nc, True)
        await until_trading(live.nc, "execution", True)
        first = await approve(live, 1, "0.01")
        await until("the first order filled", lambda: stored_count(js, "ORDERS", "order.filled.>"))
        # The exchange takes the next order at once and answers 20 s later: execution is killed in between.
        await live.sim_control("POST", "/sim/faults", {"latency_ms": 20_000, "paths": ["/api/v3/order"]})
        second = await approve(live, 2, "0.02")
        await until("the second order filled on the exchange", lambda: _trades(live, 2))
        assert await stored_count(js, "ORDERS", "order.accepted.>") == 1
        submitted = (await js.stream_info("ORDERS")).state.last_seq
        newest = await snapshot_at(js, store, submitted)  # it holds the second order, unanswered
        kill_9(live.execution.proc.pid)

        await live.sim_control("DELETE", "/sim/faults")
        await live.execution.start(live.nc)
        assert f"restored from the snapshot of ORDERS at sequence {newest.seq}" in live.execution.log_text(None)
        assert (await service_status(live.nc, "execution"))["trading_enabled"] is False
        fills = await until("both fills booked by portfolio", lambda: _two(live.booked_fills))
        orders = await live.exchange.fetch_orders(SYMBOL)
        assert sorted(o["clientOrderId"] for o in orders) == sorted(client_order_id(t, 1) for t in (first, second))
        assert len(set(fills)) == 2 and await stored_count(js, "ORDERS", "order.filled.>") == 2


async def approve(live, n: int, qty: str) -> str:
    t = target(n, qty)
    await publish(live.nc, ev.TargetApproved(id=t.id, ts_event=t.ts_event, target=t))
    return t.id


async def _trades(live, n: int) -> list | None:
    trades = await live.exchange.fetch_my_trades(SYMBOL)
    return trades if len(trades) >= n else None


async def _two(read) -> list[str] | None:
    fills = await read()
    return fills if len(fills) >= 2 else None
