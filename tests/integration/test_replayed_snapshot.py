"""Execution's start from a snapshot on a real nats-server: the replicas store snapshots of what
execution's actors rebuild from ORDERS in the object store as the log grows; actors restored
from the newest and fed the rest of ORDERS by the NATS binding are where a full replay leaves
them, having read only the rest. A snapshot that cannot be trusted (corrupt, of an unknown
version, of another log) is refused, naming why, and the start replays the whole log."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import nats
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext

from bosun.runtime import replicas, snapshots, telemetry
from bosun.runtime.clock import SimClock
from bosun.runtime.embedded import EmbeddedNats
from bosun.runtime.nats_binding import NatsBinding
from bosun.runtime.provision import provision
from bosun.runtime.replicas import Replicas
from bosun.runtime.snapshots import SnapshotStore
from proto import codec
from proto import subjects as sj
from proto.events import Event
from services.execution.actor import ExecutionActor
from services.execution.venues.live import LiveAdapter
from services.execution.venues.shadow_adapter import ShadowAdapter
from tests import order_logs

EVERY = 1_000
WAIT_S = 120.0


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


async def publish_all(js: JetStreamContext, entries: list[Event]) -> None:
    for start in range(0, len(entries), 2_000):
        await asyncio.gather(*[await js.publish_async(sj.subject_for(e), codec.encode(e))
                               for e in entries[start:start + 2_000]])


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
        caplog.clear()
        await bucket.put("ORDERS", data)
        with caplog.at_level(logging.WARNING, logger="bosun.runtime.snapshots"):
            assert await snapshots.load(store, "ORDERS") is None
        assert any("snapshot of ORDERS refused" in r.message and why in r.message for r in caplog.records), \
            [r.message for r in caplog.records]

    parts, read = await started(nc, "exec-refused", await snapshots.load(store, "ORDERS"))
    whole = [a.replayed_part() for a in order_logs.replay(order_logs.actors(), log)]
    assert read == len(log) and parts == whole
