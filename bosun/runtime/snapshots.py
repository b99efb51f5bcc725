"""Snapshots of what actors rebuild from a REPLAY input, so that a start reads the newest snapshot
and the stream after its sequence, not the whole stream: start-up flat in history.

Exact by construction: the state is taken from replicas, actors of the same classes built the same
way but never started, fed only the replayed stream through a consumer of their own (`keep`).
What they hold at stream sequence S is what a full replay up to S builds, whatever the serving
actors did meanwhile. Every `every` entries (at most once per `min_interval_s`) their parts are
stored, with S and a digest of the entry at S, in the JetStream object store `snapshots` under
the stream's name: chunked (a snapshot outgrows a message) and checked against its SHA-256 on
read by the store, replicated as every stream is (BOSUN_REPLICAS), in NATS beside the log it
summarises, so paper trading needs no PostgreSQL for it.

A start (`load`, then `restore` per actor) refuses, naming why, a snapshot it cannot trust:
unreadable, of another format or version, or of another log (the entry at S is not the one it
was taken at). Then the actor replays the whole stream, as before. An actor takes part by having
`replayed_part()` and `restore_replayed(part, after)`; the latter refuses (SnapshotError) before
it changes anything, and makes its REPLAY input start after `after`."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import msgspec
from nats.js import JetStreamContext, api
from nats.js.errors import BucketNotFoundError, NotFoundError, ObjectNotFoundError
from nats.js.errors import Error as JetStreamError

from bosun.runtime.actor import Actor, Delivery

log = logging.getLogger(__name__)

BUCKET = "snapshots"
FORMAT = "bosun.replayed"
VERSION = 1


class SnapshotError(ValueError):
    """A snapshot that cannot be used, and why."""


class Replayed(Protocol):
    name: str

    def replayed_part(self) -> bytes: ...

    def restore_replayed(self, part: bytes, after: int) -> None: ...


class Envelope(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    format: str
    version: int
    stream: str
    seq: int  # the stream sequence of the last entry the parts include
    entry: bytes  # a digest of that entry's data: the log it was taken from still holds it
    taken_ns: int
    parts: dict[str, bytes]  # actor name -> its part


def digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


def encode(envelope: Envelope) -> bytes:
    return msgspec.msgpack.encode(envelope)


def decode(data: bytes) -> Envelope:
    try:
        head = msgspec.msgpack.decode(data, type=_Head)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise SnapshotError(f"unreadable ({exc})") from None
    if head.format != FORMAT or head.version != VERSION:
        raise SnapshotError(f"format {head.format!r} version {head.version}; this build reads {FORMAT!r} "
                            f"version {VERSION}")
    try:
        return msgspec.msgpack.decode(data, type=Envelope)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise SnapshotError(f"unreadable ({exc})") from None


class _Head(msgspec.Struct):
    format: str
    version: int


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
        await (await self._bucket(create=True)).put(envelope.stream, data)
        return len(data)

    async def load(self, stream: str) -> Envelope | None:
        """The newest snapshot of `stream`, checked against the stream; None when there is none.
        SnapshotError when there is one that cannot be used."""
        store = await self._bucket(create=False)
        if store is None:
            return None
        into = io.BytesIO()  # chunk by chunk: the store's own result would concatenate them, quadratic in size
        try:
            await store.get(stream, writeinto=into)
            data = into.getvalue()
        except ObjectNotFoundError:
            return None
        except JetStreamError as exc:  # a digest mismatch among them: a corrupt object
            raise SnapshotError(f"unreadable from the object store ({type(exc).__name__}: {exc})") from None
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


def restore(actor: Any, envelope: Envelope | None) -> None:
    """`actor` from its part of `envelope`, when it has one it can use; else it replays it all."""
    if envelope is None:
        return
    part = envelope.parts.get(actor.name)
    try:
        if part is None:
            raise SnapshotError(f"no part for {actor.name}")
        actor.restore_replayed(part, envelope.seq)
    except SnapshotError as exc:
        log.warning("%s: snapshot of %s at sequence %d refused: %s; replaying the whole stream", actor.name,
                    envelope.stream, envelope.seq, exc)
        return
    log.info("%s: restored from the snapshot of %s at sequence %d; replaying what came after", actor.name,
             envelope.stream, envelope.seq)


async def load(store: SnapshotStore, stream: str) -> Envelope | None:
    """`store.load`, a refusal logged (naming why) as None: the start replays the whole stream."""
    try:
        return await store.load(stream)
    except SnapshotError as exc:
        log.warning("snapshot of %s refused: %s; replaying the whole stream", stream, exc)
        return None


class _Refusing:
    """A replica's outbox: it is never started, so nothing it does may leave it."""

    def _refuse(self, *_: Any) -> None:
        raise RuntimeError("a replica publishes nothing")

    publish = set_trading_enabled = put_control = effect = _refuse


REFUSING = _Refusing()


class Replicas:
    """Replicas of a process's actors (`build()` makes them, as the serving ones are made but on an
    outbox that refuses use), fed one stream's entries in order."""

    def __init__(self, stream: str, subject: str, build: Callable[[], Sequence[Actor]]) -> None:
        self.stream, self._subject, self._build = stream, subject, build
        self._made(build())

    def _made(self, actors: Sequence[Actor]) -> None:
        self.actors = list(actors)
        self._feeds: list[tuple[Callable[[bytes], Any], Callable[[Any], None]]] = [
            (inp.decode, inp.handler) for actor in self.actors for inp in actor.inputs()
            if inp.subject == self._subject and inp.delivery is Delivery.REPLAY]
        self.seq = 0
        self._entry = b""

    def restore(self, envelope: Envelope | None) -> None:
        """All or none: with any part refused, the replicas read the whole stream."""
        if envelope is None:
            return
        try:
            for actor in self.actors:
                if actor.name not in envelope.parts:
                    raise SnapshotError(f"no part for {actor.name}")
                actor.restore_replayed(envelope.parts[actor.name], envelope.seq)  # type: ignore[attr-defined]
        except SnapshotError:
            self._made(self._build())
            return
        self.seq, self._entry = envelope.seq, envelope.entry

    def feed(self, seq: int, data: bytes) -> None:
        """One entry: as the binding hands it on (an undecodable one or a failing handler is
        dead-lettered there and changes nothing here either)."""
        for decode, handler in self._feeds:
            try:
                handler(decode(data))
            except Exception:  # noqa: BLE001 - the serving actor's binding dead-letters it
                pass
        self.seq, self._entry = seq, digest(data)

    def envelope(self) -> Envelope:
        return Envelope(format=FORMAT, version=VERSION, stream=self.stream, seq=self.seq, entry=self._entry,
                        taken_ns=time.time_ns(),
                        parts={a.name: a.replayed_part() for a in self.actors})  # type: ignore[attr-defined]


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
