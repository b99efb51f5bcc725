"""Runs an Actor on NATS JetStream.

Every input becomes a push subscription whose callback feeds ONE bounded queue (a full queue
holds the subscription back, so flow control and max_ack_pending see our real progress); one
worker hands the messages to the actor one at a time, in arrival order, in rounds of what
has arrived:

    decode -> handler (outputs collected, nothing sent yet), for each message of the round ->
    carry out their effects, if any -> publish the outputs with Nats-Msg-Id, await every ack
    -> ack the inputs

A message that does not decode, or whose handler raises, becomes a DeadLetter on
`dlq.<service>` and is acked: the service keeps going. A failing effect or JetStream
refusing our publishes stops `run()` with the error, leaving the input unacked for
redelivery (handlers are idempotent; publishes are de-duplicated by id)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from nats.errors import NoRespondersError, TimeoutError as NatsTimeout
from nats.js.errors import APIError, NotFoundError
from opentelemetry.trace import SpanKind

from bosun.model.recent import RecentIds
from bosun.runtime import telemetry
from bosun.runtime.actor import Actor, Delivery, Effect, Input, KvEntry
from proto import codec
from proto import events as ev
from proto import subjects as sj
from proto.amounts import AmountError
from proto.streams import stream_for

log = logging.getLogger(__name__)

# The edge that carries out an actor's effects; it may return events it learned doing them.
Effects = Callable[[list[Effect]], Awaitable[Sequence[ev.Event] | None]]

PUBLISH_WINDOW = 4000  # JetStream publishes awaiting their ack, per connection
PUBLISH_ACK_TIMEOUT_S = 10.0
# A stream leader's failover stalls publishes for 5 to 8 s, longer on a loaded machine (bench/RESULTS.md),
# and while the stream has no leader a publish fails at once (no responders): attempts go on until
# this long has passed, then the service stops and says so.
PUBLISH_GIVE_UP_S = 30.0
PUBLISH_RETRY_S = 0.5  # a leaderless stream answers at once: asking often is cheap and ends the stall sooner
ACK_WAIT_S = 60.0  # a durable input not acked by then is redelivered
_KV_DELETE_OPS = {"DEL", "PURGE"}


def _trading_off(_: bytes) -> bool:
    return False


class PublishError(RuntimeError):
    pass


@dataclass(frozen=True)
class TradingEnabled:
    """An outbox entry: put `trading_enabled` in KV `control` (the kill switch)."""

    enabled: bool


@dataclass(frozen=True)
class ControlPut:
    """An outbox entry: put `value` under `key` in KV `control` (a scope's state)."""

    key: str
    value: bytes


Output = ev.Event | TradingEnabled | ControlPut | Effect


class CollectingOutbox:
    """The actor's outbox: collects during one handler call; the binding sends afterwards."""

    def __init__(self) -> None:
        self._items: list[Output] | None = None

    def publish(self, message: ev.Event) -> None:
        self._collecting().append(message)

    def set_trading_enabled(self, enabled: bool) -> None:
        self._collecting().append(TradingEnabled(enabled))

    def put_control(self, key: str, value: bytes) -> None:
        self._collecting().append(ControlPut(key, value))

    def effect(self, effect: Effect) -> None:
        self._collecting().append(effect)

    def _collecting(self) -> list[Output]:
        if self._items is None:
            raise RuntimeError("the outbox is used outside a handler call; actors publish only from handlers "
                               "and on_start()")
        return self._items

    def call(self, fn: Callable[..., Any], *args: Any) -> list[Output]:
        """Run `fn(*args)` and return what it published; on an exception nothing is kept."""
        self._items = []
        try:
            fn(*args)
            return self._items
        finally:
            self._items = None


def durable_name(service: str, subject: str) -> str:
    """A readable, valid consumer name, unique per (service, filter)."""
    readable = re.sub(r"[^A-Za-z0-9_-]", "_", subject.replace(">", "all").replace("*", "any"))
    digest = hashlib.blake2b(subject.encode(), digest_size=3).hexdigest()
    return f"{service}-{readable.strip('_')}-{digest}"


def _split_effects(outputs: list[Output]) -> tuple[list[Effect], list[Output]]:
    """(effects, what to publish): usually no effect, and then the list is handed on as it is."""
    effects = [o for o in outputs if isinstance(o, Effect)]
    return (effects, [o for o in outputs if not isinstance(o, Effect)]) if effects else (effects, outputs)


def _coalesce_prices(outputs: Sequence[Output]) -> list[Output]:
    """Several PriceSnapshots for one key in one batch: only the newest is worth a KV put."""
    kept: list[Output] = []
    slot: dict[str, int] = {}
    for out in outputs:
        if isinstance(out, ev.PriceSnapshot):
            key = sj.subject_for(out)
            if key in slot:
                if out.ts_event >= kept[slot[key]].ts_event:  # type: ignore[union-attr]
                    kept[slot[key]] = out
                continue
            slot[key] = len(kept)
        kept.append(out)
    return kept


def _wire(out: Output, spans: telemetry.RoundSpans | None = None) -> tuple[str, bytes, dict[str, str] | None]:
    if isinstance(out, TradingEnabled):
        # no Nats-Msg-Id: false -> true -> false within the dedup window must all land
        return sj.TRADING_ENABLED, codec.encode_trading_enabled(out.enabled), None
    if isinstance(out, ControlPut):  # no Nats-Msg-Id either: a state may go and come back
        return f"$KV.{sj.CONTROL_BUCKET}.{out.key}", out.value, None
    headers = {api.Header.MSG_ID: ev.msg_id(out)}
    if spans is not None and (parent := spans.parents.get(id(out))):
        headers["traceparent"] = parent  # the span of the input that published it: its parent downstream
    return sj.subject_for(out), codec.encode(out), headers


def _stream_of(subject: str) -> str | None:
    if subject.startswith("$KV."):
        return f"KV_{subject.split('.')[1]}"
    spec = stream_for(subject)
    return spec.name if spec else None


@dataclass(eq=False)
class _Route:
    """One input's subscription and bookkeeping."""

    input: Input
    stream: str
    service: str
    # every handler this input feeds: more than one when several actors of the process read the
    # same subject the same way (execution and its shadow venue, the order log): one subscription
    handlers: list[Callable[[Any], None]] = field(default_factory=list)
    sub: Any = None  # JetStreamContext.PushSubscription
    backlog: int = 0  # REPLAY/LATEST: messages pending when the consumer was created
    # DURABLE: the stream sequences this process handled (the newest HANDLED_MEMORY of them)
    handled: RecentIds = field(default_factory=lambda: RecentIds(HANDLED_MEMORY))
    seen: int = 0
    caught_up: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        if not self.handlers:
            self.handlers.append(self.input.handler)
        self.m_in = telemetry.MESSAGES_IN.labels(self.service, self.input.subject)
        self.m_seconds = telemetry.HANDLER_SECONDS.labels(self.service, self.input.subject)
        self.m_pending = telemetry.CONSUMER_PENDING.labels(self.service, self.input.subject)

    @property
    def durable(self) -> bool:
        return self.input.delivery is Delivery.DURABLE

    def note_done(self, msg: Msg) -> None:
        if self.caught_up.is_set():
            return
        self.seen += 1
        if self.seen >= self.backlog or msg.metadata.num_pending == 0:
            self.caught_up.set()


# A redelivery of a message this process handled comes when its ack was lost or late: the handled
# sequences remembered to recognise it (~6 MB at most per durable input).
HANDLED_MEMORY = 65_536
MAX_ROUND = 256  # messages handled before what they published is sent and they are acked
_START = object()  # queue marker: run actor.on_start() in turn with the messages


class NatsBinding:
    def __init__(self, nc: Client, service: str, *, max_in_flight: int = 1024) -> None:
        sj.check_token(service, "service name")
        self.nc = nc
        self.service = service
        self.js: JetStreamContext = nc.jetstream(publish_async_max_pending=PUBLISH_WINDOW)
        self._max_in_flight = max_in_flight
        self._outbox = CollectingOutbox()
        self._turn = asyncio.Lock()  # one handler call at a time: actors are not thread-safe
        self._effects: Effects | None = None
        self._stopping = False
        self._m_out = telemetry.MESSAGES_OUT.labels(service)
        self._m_dead = telemetry.DEAD_LETTERS.labels(service)
        self._orders = telemetry.OrderContexts()  # traced: each order's SubmitOrder, for its reports

    @property
    def outbox(self) -> CollectingOutbox:
        return self._outbox

    # ------------------------------------------------------------------ running an actor

    async def run(self, actor: Actor, effects: Effects | None = None, ready: asyncio.Event | None = None,
                  also: Sequence[Actor] = ()) -> None:
        """Consume the actor's inputs until cancelled (or until an effect or publish failure, raised).
        `also`: more actors of the process, without effects of their own, handled in the same turns
        and rounds (built on this binding's outbox); an input several of them read the same way is
        one subscription, each message decoded once and handed to each in turn."""
        self._effects = effects
        actors = [actor, *also]
        queue: asyncio.Queue[tuple[Any, Any]] = asyncio.Queue(self._max_in_flight)
        by_key: dict[tuple[Any, ...], _Route] = {}
        for inp in (inp for a in actors for inp in a.inputs()):
            shared = by_key.get(key := (inp.subject, inp.delivery, inp.decode, inp.keyed, inp.after))
            if shared is None:
                by_key[key] = _Route(inp, await self._resolve_stream(inp.subject), self.service)
            else:
                shared.handlers.append(inp.handler)
        routes = list(by_key.values())
        worker = asyncio.create_task(self._work(queue, actors), name=f"{self.service}-worker")
        try:
            catch_up = [r for r in routes if r.input.delivery in (Delivery.REPLAY, Delivery.LATEST)]
            for route in catch_up:
                await self._subscribe(route, queue)
            await self._until(worker, asyncio.gather(*(r.caught_up.wait() for r in catch_up)))
            started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            await queue.put((_START, started))
            await self._until(worker, started)
            for route in routes:
                if route not in catch_up:
                    await self._subscribe(route, queue)
            log.info("%s: consuming %d inputs", self.service, len(routes),
                     extra={"inputs": [f"{r.input.subject} ({r.input.delivery.value})" for r in routes]})
            if ready is not None:
                ready.set()
            await asyncio.wait([worker])
            worker.result()  # an effect or publish failure: raise it
        finally:
            await self._stop_worker(worker)
            for route in routes:
                if route.sub is not None:
                    try:
                        await route.sub.unsubscribe()
                    except Exception as exc:  # the connection may be gone already
                        log.debug("unsubscribe %s: %s", route.input.subject, exc)

    async def _until(self, worker: asyncio.Task[None], awaitable: Awaitable[Any]) -> None:
        """Await `awaitable`, unless the worker fails first (then raise its error)."""
        waiting = asyncio.ensure_future(awaitable)
        try:
            await asyncio.wait([worker, waiting], return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not waiting.done():
                waiting.cancel()
        if worker.done():
            worker.result()
            raise RuntimeError("the worker stopped")
        waiting.result()

    async def _stop_worker(self, worker: asyncio.Task[None]) -> None:
        # Let the message being handled finish (its ack included) before stopping; a
        # message still queued stays unacked and is redelivered.
        self._stopping = True
        if not worker.done():
            try:
                await asyncio.wait_for(self._turn.acquire(), PUBLISH_ACK_TIMEOUT_S)
                self._turn.release()
            except TimeoutError:
                pass
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)

    async def _resolve_stream(self, subject: str) -> str:
        stream = _stream_of(subject)
        if stream is not None:
            return stream
        try:
            return await self.js.find_stream_name_by_subject(subject)
        except NotFoundError:
            raise ValueError(f"{self.service}: no JetStream stream captures input subject {subject!r}") from None

    async def _subscribe(self, route: _Route, queue: asyncio.Queue[tuple[Any, Any]]) -> None:
        inp = route.input

        async def arrived(msg: Msg) -> None:
            # nats-py awaits this before handing over the next message: a full queue holds the
            # subscription back, and max_ack_pending / flow control hold the server back.
            await queue.put((route, msg))

        if route.durable:
            await self._resume_from_ack_floor(route.stream, durable_name(self.service, inp.subject))
            config = api.ConsumerConfig(
                durable_name=durable_name(self.service, inp.subject), deliver_subject=self.nc.new_inbox(),
                filter_subject=inp.subject, deliver_policy=api.DeliverPolicy.ALL,
                ack_policy=api.AckPolicy.EXPLICIT, ack_wait=ACK_WAIT_S, max_ack_pending=self._max_in_flight)
            route.sub = await self.js.subscribe(inp.subject, durable=config.durable_name, stream=route.stream,
                                                config=config, manual_ack=True, cb=arrived)
            route.caught_up.set()  # nothing to catch up on: it flows after on_start
        else:
            policy = {Delivery.REPLAY: api.DeliverPolicy.ALL, Delivery.LATEST: api.DeliverPolicy.LAST_PER_SUBJECT,
                      Delivery.LIVE: api.DeliverPolicy.NEW}[inp.delivery]
            # an ordered consumer, created by hand to learn its backlog at creation
            if inp.after:  # a snapshot covers the stream up to there
                policy = api.DeliverPolicy.BY_START_SEQUENCE
            config = api.ConsumerConfig(
                deliver_subject=self.nc.new_inbox(), filter_subject=inp.subject, deliver_policy=policy,
                opt_start_seq=inp.after + 1 if inp.after else None, ack_policy=api.AckPolicy.NONE, max_deliver=1, ack_wait=22 * 3600, flow_control=True,
                idle_heartbeat=5.0, num_replicas=1, mem_storage=True)
            info = await self.js.add_consumer(route.stream, config=config)
            route.backlog = info.num_pending or 0
            if route.backlog == 0 or inp.delivery is Delivery.LIVE:
                route.caught_up.set()
            route.sub = await self.js.subscribe_bind(route.stream, config, info.name, ordered_consumer=True,
                                                     cb=arrived)

    async def _resume_from_ack_floor(self, stream: str, name: str) -> None:
        """What a previous incarnation took and never acked (killed) comes again now, not when its
        ack wait runs out: the consumer is reset to its ack floor (nats-server >= 2.14, ADR-60),
        keeping its config. One process serves a durable (`bosun up`, compose and Nomad run one
        instance per service), so ack-pending messages on an unbound consumer are a dead one's.
        Those acked above the floor come again too: handlers are idempotent."""
        try:
            info = await self.js.consumer_info(stream, name)
        except NotFoundError:
            return  # first start: the subscription creates it
        if info.push_bound or not info.num_ack_pending:
            return  # a live subscriber holds them (subscribe refuses a second), or nothing was in flight
        try:
            reset = await self.js.reset_consumer(stream, name)
        except (APIError, NatsTimeout, NoRespondersError) as exc:  # a server older than 2.14, or not allowed
            log.warning("%s: could not reset %s to its ack floor (%r): %d unacked messages come again after "
                        "%.0f s", self.service, name, exc, info.num_ack_pending, ACK_WAIT_S)
            return
        log.info("%s: %s resumes at stream sequence %d: %d messages a previous process left unacked",
                 self.service, name, reset.reset_seq, info.num_ack_pending)

    async def _work(self, queue: asyncio.Queue[tuple[Any, Any]], actors: list[Actor]) -> None:
        self._stopping = False
        while True:
            items = [await queue.get()]
            if self._stopping:
                return
            # What arrived meanwhile is handled in the same round: one publish window and one
            # call of the effects for all of it (with tracing on too: a span per message).
            while len(items) < MAX_ROUND and not queue.empty():
                items.append(queue.get_nowait())
            async with self._turn:
                messages: list[tuple[_Route, Msg]] = []
                for item, arg in items:
                    if item is _START:
                        await self._deliver(messages)
                        messages = []
                        await self._handle_start(actors, arg)
                    else:
                        messages.append((item, arg))
                await self._deliver(messages)

    async def _handle_start(self, actors: list[Actor], started: asyncio.Future[None]) -> None:
        # A service whose start failed must not look ready: execution's on_start is what
        # cancels the orders it restored while trading is off.
        try:
            for actor in actors:
                await self._send(await self._carry_out(self._outbox.call(actor.on_start)))
        except Exception as exc:
            started.set_exception(RuntimeError(f"{self.service}: on_start failed: {type(exc).__name__}: {exc}"))
            return
        started.set_result(None)

    async def _deliver(self, messages: list[tuple[_Route, Msg]]) -> None:
        """One round: each message handled in order, then the effects of all of them, then
        everything they published (acks awaited), then the inputs acked."""
        if not messages:
            return
        t0 = time.perf_counter()
        outputs: list[Output] = []
        # Traced, a span per message that published something (or asked for an effect, or became a
        # dead letter), made after the handler from its start: most market data and order-log
        # echoes publish nothing and cost no span. The spans end once the round's outputs are stored.
        spans = telemetry.RoundSpans(self._orders) if telemetry.tracing() else None
        try:
            for route, msg in messages:
                start = time.time_ns() if spans is not None else 0
                produced = self._handle_message(route, msg)
                if spans is not None:
                    spans.handled(f"{self.service} {route.input.subject}", SpanKind.CONSUMER, start, produced,
                                  msg.headers)
                outputs += produced
            await self._send(await self._carry_out(outputs, spans), spans)
        finally:
            if spans is not None:
                spans.end()
        done = time.perf_counter() - t0
        newest: dict[_Route, Msg] = {}
        for route, msg in messages:
            if route.durable:
                await msg.ack()
            route.note_done(msg)
            route.m_seconds.observe(done)
            newest[route] = msg
        for route, msg in newest.items():  # the gauge says what the newest message of the round said
            route.m_pending.set(msg.metadata.num_pending)

    def _handle_message(self, route: _Route, msg: Msg) -> list[Output]:
        route.m_in.inc()
        if route.durable:
            if not route.handled.add(msg.metadata.sequence.stream):
                # Redelivered after this process handled it (the ack was late or lost): handlers like
                # the strategies' are not idempotent, so it is acknowledged again and handed to no one.
                # One a previous process took and never acked (killed) is handled: it was not, here,
                # even though newer messages came first while its ack wait ran out.
                return []
        decode = route.input.decode
        deleted = bool(msg.headers) and msg.headers.get("KV-Operation") in _KV_DELETE_OPS
        if route.input.keyed:  # the handler gets the key with the value (None: deleted)
            entry = KvEntry(msg.subject.split(".", 2)[2], None if deleted else msg.data)
            return self._handle(route.handlers, lambda _: entry, msg.data, msg.subject, msg)
        if deleted:
            # A deleted key has no value to hand on, except the kill switch: gone means off.
            decode = _trading_off if msg.subject == sj.TRADING_ENABLED else None
        if decode is None:
            return []
        return self._handle(route.handlers, decode, msg.data, msg.subject, msg)

    def _handle(self, handlers: Sequence[Callable[[Any], None]], decode: Callable[[bytes], Any], data: bytes,
                subject: str, source: Msg | Callable[[], tuple[bytes, str]]) -> list[Output]:
        """decode (once) -> each handler; returns their outputs, effects included (a DeadLetter on a
        bad input, or for each handler that raised). `source` names the input in a dead letter."""
        letters: list[Output] = []
        try:
            value = decode(data)
        except Exception as exc:
            # An amount it may not carry is named by the check itself (event type, field, value).
            problem = str(exc) if isinstance(exc, AmountError) else f"{type(exc).__name__}: {exc}"
            letters.append(self._dead_letter(subject, data, f"cannot decode the message on {subject}: {problem}",
                                             source))
            if subject != sj.TRADING_ENABLED:
                return letters
            value = False  # an unreadable kill switch is off: fail closed
        for handler in handlers:
            try:
                letters += self._outbox.call(handler, value)
            except Exception as exc:
                log.warning("%s: handler %s failed on %s", self.service, getattr(handler, "__qualname__", handler),
                            subject, exc_info=True)
                letters.append(self._dead_letter(subject, data, f"{getattr(handler, '__qualname__', handler)} "
                                                                f"raised {type(exc).__name__}: {exc}", source))
        return letters

    async def _carry_out(self, outputs: list[Output], spans: telemetry.RoundSpans | None = None) -> list[Output]:
        """Carry out the effects among `outputs`; returns the rest, to publish. Traced, what the edge
        reports is a child of the span of the first message that asked for an effect."""
        effects, publish = _split_effects(outputs)
        if effects:
            if self._effects is None:
                raise RuntimeError(f"{self.service}: the actor asked for {type(effects[0]).__name__} but its "
                                   f"process carries out no effects")
            reported = await self._effects(effects)
            if reported:  # what the edge learned doing them (an exchange's answers): sent with the rest
                if spans is not None:
                    spans.carry(effects[0], reported)
                return [*publish, *reported]
        return publish

    @staticmethod
    def _msg_ref(msg: Msg) -> str:
        try:
            meta = msg.metadata
            return f"{meta.stream}:{meta.sequence.stream}"
        except Exception:  # not a JetStream message
            return hashlib.blake2b(msg.subject.encode() + msg.data, digest_size=8).hexdigest()

    def _dead_letter(self, subject: str, payload: bytes, reason: str, source: Msg | Callable[[], tuple[bytes, str]]
                     ) -> ev.DeadLetter:
        # the reference is made here, for a dead letter, not for every message
        payload, ref = (payload, self._msg_ref(source)) if isinstance(source, Msg) else source()
        self._m_dead.inc()
        log.warning("%s: dead letter from %s: %s", self.service, subject, reason)
        return ev.DeadLetter(id=f"{self.service}:{ref}", ts_event=time.time_ns(), service=self.service,
                             subject=subject, reason=reason, payload=payload)

    # ------------------------------------------------------------------ other sources

    async def feed(self, handler: Callable[[Any], None], message: Any) -> None:
        """One handler call for a source outside NATS (e.g. an exchange websocket), in turn
        with the inputs and with the same collect -> effects -> publish discipline."""
        name = getattr(handler, "__qualname__", repr(handler))

        def source() -> tuple[bytes, str]:  # the payload and ref of a dead letter: made only for one
            payload = message if isinstance(message, bytes) else repr(message).encode()
            return payload, hashlib.blake2b(name.encode() + payload, digest_size=8).hexdigest()

        async with self._turn:
            start = time.time_ns()
            outputs = self._handle((handler,), lambda _: message, b"", f"feed:{name}", source)
            spans = telemetry.RoundSpans(self._orders) if outputs and telemetry.tracing() else None
            if spans is not None:
                spans.handled(f"{self.service} {name}", SpanKind.PRODUCER, start, outputs)
            try:
                await self._send(await self._carry_out(outputs, spans), spans)
            finally:
                if spans is not None:
                    spans.end()

    async def publish(self, events: Sequence[ev.Event]) -> None:
        """Publish a batch now, awaiting every ack."""
        await self._send(list(events))

    async def put_trading_enabled(self, enabled: bool) -> None:
        await self._send([TradingEnabled(enabled)])

    # ------------------------------------------------------------------ publishing

    async def _send(self, outputs: Sequence[Output], spans: telemetry.RoundSpans | None = None) -> None:
        if not outputs:
            return
        wire = [_wire(o, spans) for o in _coalesce_prices(outputs)]
        for start in range(0, len(wire), PUBLISH_WINDOW):
            await self._send_window(wire[start:start + PUBLISH_WINDOW])

    async def _send_window(self, wire: list[tuple[str, bytes, dict[str, str] | None]]) -> None:
        """At most PUBLISH_WINDOW messages, every ack awaited: nats-py's window never fills, so a
        publish never waits for a slot. (Its `wait_stall` would: with a timeout, every publish
        goes through the event loop, and the connection then writes one message per syscall.)"""
        give_up = time.monotonic() + PUBLISH_GIVE_UP_S
        attempt = 0
        while True:
            attempt += 1
            futures: list[asyncio.Future[Any]] = []
            try:
                for subject, payload, headers in wire:
                    futures.append(await self.js.publish_async(subject, payload, headers=headers))
                await asyncio.wait_for(asyncio.gather(*futures), PUBLISH_ACK_TIMEOUT_S)
                self._m_out.inc(len(wire))
                return
            except Exception as exc:  # timeouts, no responders, API errors: retry, ids make it safe
                for future in futures:
                    future.cancel()  # gives its window slot back
                if time.monotonic() >= give_up:
                    raise PublishError(f"{self.service}: JetStream did not accept {len(wire)} messages "
                                       f"(first {wire[0][0]}) in {PUBLISH_GIVE_UP_S:.0f}s ({attempt} attempts): "
                                       f"{exc!r}") from exc
                log.warning("%s: publish attempt %d failed: %r", self.service, attempt, exc)
                await asyncio.sleep(PUBLISH_RETRY_S)
