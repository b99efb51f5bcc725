"""The shape of a service's logic: a plain class with state and `on_<event>` handlers.

An actor does no I/O. It is handed a clock and an outbox, declares the subjects it
reads (`inputs`), and has one way out, the outbox: events it publishes, and effects
(store this, send that) that the edge of its process carries out. The same actor runs
on the in-process bus (tests, backtests) and on NATS (bosun.runtime.nats_binding)."""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, NamedTuple, Protocol

from bosun.runtime.clock import Clock
from proto import codec
from proto import events as ev


class Delivery(enum.Enum):
    """How a binding feeds one input to its handler."""

    DURABLE = "durable"  # every message once; resumes after the last ack; ack after the effect
    REPLAY = "replay"  # the whole stream (or after a snapshot's sequence) on every start, then live
    LATEST = "latest"  # the newest message per subject, then live: KV and last-value state
    LIVE = "live"  # only what is published from now on: market data


class Input(NamedTuple):
    subject: str  # a NATS filter; `$KV.<bucket>.<key filter>` reads a KV bucket
    handler: Callable[[Any], None]
    decode: Callable[[bytes], Any]
    delivery: Delivery = Delivery.DURABLE
    keyed: bool = False  # the handler gets a KvEntry (see kv_input)
    after: int = 0  # REPLAY: the stream sequence a restored snapshot covers; delivery starts after it


class KvEntry(NamedTuple):
    """One key of a KV bucket as a `kv_input` handler gets it: the value is None when the key
    was deleted or purged (the handler decides what that means: for a switch, off)."""

    key: str  # without the bucket: `trading_enabled.alice`
    value: bytes | None


def kv_input(subject: str, handler: Callable[[KvEntry], None]) -> Input:
    """The newest value of every key `subject` (`$KV.<bucket>.<key filter>`) matches, then each
    change, as KvEntry: for inputs spanning several keys, whose handler must know which one."""
    return Input(subject, handler, _raw, Delivery.LATEST, keyed=True)


def _raw(data: bytes) -> bytes:
    return data


def event_input(subject: str, kind: type[ev.Event], handler: Callable[[Any], None],
                delivery: Delivery = Delivery.DURABLE) -> Input:
    return Input(subject, handler, lambda data: codec.decode(data, kind), delivery)


class Endpoint(NamedTuple):
    """A question the service answers over request/reply (nats.micro), from the actor's state:
    `answer(subject)` gets the request's subject (its tokens may name what is asked about) and
    returns JSON-ready data. It runs in the loop between handler calls, so it reads a state that
    nothing changes meanwhile."""

    name: str
    subject: str  # a NATS filter; may end in wildcards
    answer: Callable[[str], Any]


class SnapshotError(ValueError):
    """A snapshot an actor cannot restore from, and why (`restore_replayed` refuses with it before it
    changes anything; bosun.runtime.replicas)."""


class Effect:
    """Something only the edge of a process can do (write to PostgreSQL, send a webhook).
    On NATS it is carried out before anything the same handler published is sent, and
    before the input is acked: a failure leaves the input to be redelivered."""

    __slots__ = ()


class Outbox(Protocol):
    def publish(self, message: ev.Event) -> None: ...

    def set_trading_enabled(self, enabled: bool) -> None: ...

    def put_control(self, key: str, value: bytes) -> None: ...

    def effect(self, effect: Effect) -> None: ...


class Actor:
    """Base of every service's logic. Subclasses set `name` and implement `inputs`."""

    name: ClassVar[str]

    def __init__(self, clock: Clock, out: Outbox) -> None:
        self.clock = clock
        self.out = out

    def inputs(self) -> Sequence[Input]:
        raise NotImplementedError

    def endpoints(self) -> Sequence[Endpoint]:
        """Request/reply endpoints beside `status` (none by default)."""
        return ()

    def on_start(self) -> None:
        """Called once every REPLAY and LATEST input has caught up, before DURABLE ones flow."""
