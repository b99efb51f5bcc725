"""Snapshots of what actors rebuild from a REPLAY input, so that a start reads the newest snapshot
and the stream after its sequence, not the whole stream: a start bounded whatever the history. The pure part:
the snapshot's envelope, the replicas it is taken from, and an actor's restore from it (the NATS
edge that stores and reads them: bosun/runtime/snapshots.py).

Exact by construction: the state is taken from replicas, actors of the same classes built the same
way but never started, fed only the replayed stream (`Replicas.feed`). What they hold at stream
sequence S is what a full replay up to S builds, whatever the serving actors did meanwhile. An
actor takes part by having `replayed_part()` and `restore_replayed(part, after)`; the latter
refuses (SnapshotError, naming why) before it changes anything, and makes its REPLAY input start
after `after`. Refused, the actor replays the whole stream, as before."""

from __future__ import annotations

import contextlib
import gc
import hashlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

import msgspec

from bosun.runtime.actor import Actor, Delivery, SnapshotError

log = logging.getLogger(__name__)

FORMAT = "bosun.replayed"
VERSION = 1


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


def restore(actor: Replayed, envelope: Envelope | None) -> None:
    """`actor` from its part of `envelope`, when it has one it can use; else it replays it all."""
    if envelope is None:
        return
    part = envelope.parts.get(actor.name)
    try:
        if part is None:
            raise SnapshotError(f"no part for {actor.name}")
        with _bulk():
            actor.restore_replayed(part, envelope.seq)
    except SnapshotError as exc:
        log.warning("%s: snapshot of %s at sequence %d refused: %s; replaying the whole stream", actor.name,
                    envelope.stream, envelope.seq, exc)
        return
    log.info("%s: restored from the snapshot of %s at sequence %d; replaying what came after", actor.name,
             envelope.stream, envelope.seq)


@contextlib.contextmanager
def _bulk() -> Iterator[None]:
    """No cyclic garbage collection while a part is taken or restored: it makes hundreds of
    thousands of objects, none of them in a cycle, and the collector's passes over them took half
    the time (bench/RESULTS.md)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


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
        # Handlers by decoder: an entry decoded once for all that read it the same way, as the binding does.
        self._feeds: dict[Callable[[bytes], Any], list[Callable[[Any], None]]] = {}
        for inp in (inp for actor in self.actors for inp in actor.inputs()):
            if inp.subject == self._subject and inp.delivery is Delivery.REPLAY:
                self._feeds.setdefault(inp.decode, []).append(inp.handler)
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
                with _bulk():
                    actor.restore_replayed(envelope.parts[actor.name], envelope.seq)  # type: ignore[attr-defined]
        except SnapshotError as exc:
            log.warning("replicas: snapshot of %s at sequence %d refused: %s; they read the whole stream",
                        envelope.stream, envelope.seq, exc)
            self._made(self._build())
            return
        self.seq, self._entry = envelope.seq, envelope.entry

    def feed(self, seq: int, data: bytes) -> None:
        """One entry: as the binding hands it on (an undecodable one or a failing handler is
        dead-lettered there and changes nothing here either)."""
        for decode, handlers in self._feeds.items():
            try:
                value = decode(data)
            except Exception:  # noqa: BLE001 - the serving actor's binding dead-letters it
                continue
            for handler in handlers:
                try:
                    handler(value)
                except Exception:  # noqa: BLE001 - dead-lettered there too
                    pass
        self.seq, self._entry = seq, digest(data)

    def envelope(self) -> Envelope:
        with _bulk():
            parts = {a.name: a.replayed_part() for a in self.actors}  # type: ignore[attr-defined]
        return Envelope(format=FORMAT, version=VERSION, stream=self.stream, seq=self.seq, entry=self._entry,
                        taken_ns=time.time_ns(), parts=parts)
