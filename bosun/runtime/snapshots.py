"""Where snapshots of what actors rebuild from a REPLAY input live (bosun/runtime/replicas.py), and
the task that keeps them: the JetStream object store `snapshots`, one object per stream, the newest.

Chunked (a snapshot outgrows a message) and checked against its size and SHA-256 on read,
replicated as every stream is (BOSUN_REPLICAS), in NATS beside the log it summarises, so paper
trading needs no PostgreSQL for it. `keep` feeds the replicas the stream through a consumer of
their own and stores their snapshot every `every` entries, with its sequence S and a digest of the
entry at S. A start (`load`) refuses, naming why, a snapshot it cannot trust: unreadable, of
another format or version, or of another log (the entry at S is not the one it was taken at)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import time
from typing import Any

from nats.js import JetStreamContext, api
from nats.js.errors import BucketNotFoundError, NotFoundError, ObjectNotFoundError
from nats.js.errors import Error as JetStreamError

from bosun.runtime.replicas import Envelope, Replicas, SnapshotError, decode, digest, encode

log = logging.getLogger(__name__)

BUCKET = "snapshots"
STREAM = f"OBJ_{BUCKET}"
# Read back one stream message at a time, so that each answer (base64 in JSON) stays under NATS's
# default max_payload of 1 MiB.
CHUNK_BYTES = 512 * 1024
MAX_BYTES = 512 * 1024 * 1024  # a snapshot that says it is larger is not read
READS = 3  # attempts at a snapshot whose chunks a newer one's write purged while it was read


class SnapshotStore:
    """The newest snapshot per stream, in the object store `snapshots`."""

    def __init__(self, js: JetStreamContext, replicas: int = 1) -> None:
        self._js = js
        self._replicas = replicas
        self._store: Any = None

    async def _bucket(self, create: bool) -> Any:
        if self._store is None:
            try:
                self._store = await self._js.object_store(BUCKET)
            except BucketNotFoundError:
                if not create:
                    return None
                self._store = await self._js.create_object_store(BUCKET, config=api.ObjectStoreConfig(
                    description="bosun: the newest snapshot of what is rebuilt from each replayed stream",
                    replicas=self._replicas))
        return self._store

    async def save(self, envelope: Envelope) -> int:
        """Store `envelope` as its stream's newest; returns its size in bytes."""
        data = encode(envelope)
        meta = api.ObjectMeta(name=envelope.stream, options=api.ObjectMetaOptions(max_chunk_size=CHUNK_BYTES))
        await (await self._bucket(create=True)).put(envelope.stream, data, meta=meta)
        return len(data)

    async def load(self, stream: str) -> Envelope | None:
        """The newest snapshot of `stream`, checked against the stream; None when there is none.
        SnapshotError when there is one that cannot be used."""
        store = await self._bucket(create=False)
        if store is None:
            return None
        for attempt in range(1, READS + 1):
            try:
                info = await store.get_info(stream)
            except ObjectNotFoundError:
                return None
            except JetStreamError as exc:
                raise SnapshotError(f"unreadable from the object store ({type(exc).__name__}: {exc})") from None
            try:
                data = await self._chunks(info)
                break
            except _Vanished:  # a newer snapshot replaced it while it was read: read that one
                if attempt == READS:
                    raise
        envelope = decode(data)
        if envelope.stream != stream:
            raise SnapshotError(f"taken of stream {envelope.stream}, stored as {stream}'s")
        try:
            entry = await self._js.get_msg(stream, envelope.seq)
        except NotFoundError:
            raise SnapshotError(f"taken at {stream} sequence {envelope.seq}, which the stream does not hold: "
                                f"not the log it was taken from") from None
        if digest(entry.data or b"") != envelope.entry:
            raise SnapshotError(f"the entry at {stream} sequence {envelope.seq} is not the one it was taken at: "
                                f"not the log it was taken from")
        return envelope

    async def _chunks(self, info: api.ObjectInfo) -> bytes:
        """The object's data, checked against its size and SHA-256. Each chunk by its own request:
        the store's own `get` (an ordered consumer) took 0.5 s for 9 MB, idle most of it."""
        if not 0 <= (info.size or 0) <= MAX_BYTES or not 0 <= (info.chunks or 0) <= MAX_BYTES:
            raise SnapshotError(f"says it holds {info.size} bytes in {info.chunks} chunks: not read")
        subject, seq, data = f"$O.{BUCKET}.C.{info.nuid}", 0, bytearray()
        for _ in range(info.chunks or 0):
            try:
                chunk = await self._js.get_msg(STREAM, seq=seq + 1, subject=subject, next=True)
            except NotFoundError:
                raise _Vanished(f"{len(data)} of its {info.size} bytes found in the object store") from None
            data += chunk.data or b""
            seq = chunk.seq or seq + 1
        stored = (info.digest or "").partition("=")[2]
        if len(data) != info.size or base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode() != stored:
            raise SnapshotError("corrupt: its size or SHA-256 is not the one the object store holds for it")
        return bytes(data)


class _Vanished(SnapshotError):
    """Chunks gone: replaced by a newer snapshot meanwhile, or lost."""


async def load(store: SnapshotStore, stream: str) -> Envelope | None:
    """`store.load`, a refusal logged (naming why) as None: the start replays the whole stream."""
    try:
        return await store.load(stream)
    except SnapshotError as exc:
        log.warning("snapshot of %s refused: %s; replaying the whole stream", stream, exc)
        return None


async def keep(js: JetStreamContext, store: SnapshotStore, replicas: Replicas, subject: str, every: int,
               min_interval_s: float) -> None:
    """Feed `replicas` the stream from after their sequence, for ever, storing a snapshot once
    `every` entries have come since the last (at most once per `min_interval_s`, one write at a
    time, the state taken when the write starts). A failed write is logged and tried again with
    the next: trading does not depend on it."""
    since = 0
    due = asyncio.Event()

    async def arrived(msg: Any) -> None:
        nonlocal since
        replicas.feed(msg.metadata.sequence.stream, msg.data)
        since += 1
        if since >= every:
            due.set()

    config = api.ConsumerConfig(deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=replicas.seq + 1)
    sub = await js.subscribe(subject, stream=replicas.stream, ordered_consumer=True, config=config, cb=arrived)
    try:
        while True:
            await due.wait()
            due.clear()
            since = 0
            t0 = time.perf_counter()
            envelope = replicas.envelope()  # between two entries: nothing feeds the replicas meanwhile
            try:
                size = await store.save(envelope)
            except Exception as exc:  # noqa: BLE001 - logged; the next snapshot tries again
                log.warning("snapshot of %s at sequence %d not stored: %r", envelope.stream, envelope.seq, exc)
            else:
                log.info("snapshot of %s at sequence %d stored: %d bytes in %.3f s", envelope.stream, envelope.seq,
                         size, time.perf_counter() - t0)
            await asyncio.sleep(min_interval_s)
    finally:
        with contextlib.suppress(Exception):  # the connection may be gone already
            await sub.unsubscribe()
