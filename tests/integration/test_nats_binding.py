"""NatsBinding and run_service on a real nats-server: durable inputs handled once, outputs
de-duplicated by Nats-Msg-Id, effects before the ack, dead letters, the kill switch, and
nats.micro discovery. Every test uses its own service name and subjects."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import msgspec
import nats
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext

from bosun.runtime import telemetry, urls
from bosun.runtime.actor import Actor, Delivery, Effect, Input, Outbox, event_input
from bosun.runtime.backlog import until_behind_at_most
from bosun.runtime.clock import Clock, SimClock
from bosun.runtime.embedded import EmbeddedNats, free_port
from bosun.runtime.nats_binding import NatsBinding, TradingEnabled, _coalesce_prices, durable_name
from bosun.runtime.service import run_service
from proto import codec
from proto import events as ev
from proto import subjects as sj
from tests.natshelp import Collector, acked, stored_count

pytestmark = pytest.mark.integration


@dataclass(frozen=True, slots=True)
class Note(Effect):
    target_id: str


class Toy(Actor):
    """Approves every target of one client; a negative qty makes the handler raise. With
    `notes`, it also asks its edge to note each approval (an effect)."""

    name = "toy"

    def __init__(self, clock: Clock, out: Outbox, client: str, seen: Callable[[str, Any], None] = lambda *_: None,
                 notes: bool = False):
        super().__init__(clock, out)
        self.client = client
        self.notes = notes
        self.seen = seen
        self.handled: list[str] = []
        self.trading: list[bool] = []
        self.trading_at_start: list[bool] | None = None

    def inputs(self) -> list[Input]:
        return [event_input(f"target.proposed.{self.client}.>", ev.TargetPosition, self.on_target_position),
                Input(sj.TRADING_ENABLED, self.on_trading_enabled, codec.decode_trading_enabled, Delivery.LATEST)]

    def on_start(self) -> None:
        self.trading_at_start = list(self.trading)

    def on_target_position(self, target: ev.TargetPosition) -> None:
        self.handled.append(target.id)
        if target.qty < 0:
            raise ValueError(f"toy refuses negative qty {target.qty}")
        self.out.publish(ev.TargetApproved(id=target.id, ts_event=target.ts_event, target=target))
        if self.notes:
            self.out.effect(Note(target.id))

    def on_trading_enabled(self, enabled: bool) -> None:
        self.trading.append(enabled)
        self.seen("trading", enabled)

    def status(self) -> dict[str, object]:
        return {"client": self.client, "handled": len(self.handled)}


def target(client: str, n: int, qty: str = "1") -> ev.TargetPosition:
    return ev.TargetPosition(id=f"t{n}", ts_event=n, client=client, venue="binance", symbol="BTCUSDT",
                             qty=Decimal(qty), strategy="s", price=Decimal("100"))


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


@asynccontextmanager
async def running(nc: Client, actor: Callable[[Outbox], Toy], service: str,
                  effects: Any = None) -> AsyncIterator[tuple[NatsBinding, Toy]]:
    binding = NatsBinding(nc, service)
    toy = actor(binding.outbox)
    ready = asyncio.Event()
    task = asyncio.create_task(binding.run(toy, effects, ready))
    waiting = asyncio.create_task(ready.wait())
    await asyncio.wait([task, waiting], timeout=10, return_when=asyncio.FIRST_COMPLETED)
    waiting.cancel()
    if task.done():
        task.result()
    assert ready.is_set(), "the binding did not get ready within 10 s"
    try:
        yield binding, toy
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_durable_input_is_handled_once_effects_before_ack_outputs_deduplicated(
        nc: Client, js: JetStreamContext) -> None:
    client, service = unique("c"), unique("toy")
    consumer = durable_name(service, f"target.proposed.{client}.>")
    at_sink: list[tuple[list[str], int, int]] = []

    async def carry_out(effects: list[Note]) -> None:
        info = await js.consumer_info("TARGETS", consumer)
        stored = await stored_count(js, "TARGETS", f"target.approved.{client}.>")
        at_sink.append(([e.target_id for e in effects], info.ack_floor.consumer_seq, stored))

    async with running(nc, lambda out: Toy(SimClock(), out, client, notes=True), service, carry_out) as (binding, toy):
        async with Collector(nc, f"target.approved.{client}.>") as approved:
            await js.publish(f"target.proposed.{client}.binance.BTCUSDT", codec.encode(target(client, 1)))
            await js.publish(f"target.proposed.{client}.binance.BTCUSDT", codec.encode(target(client, 2)))
            first, second = await approved.wait(2)
        assert codec.decode(first.data, ev.TargetApproved).id == "t1"
        assert first.headers and first.headers["Nats-Msg-Id"] == "TargetApproved:t1"
        assert codec.decode(second.data, ev.TargetApproved).id == "t2"

        # the effects of each round ran with its inputs unacked and before its outputs were
        # stored; a later round only after the earlier one's outputs were stored
        assert [t for ids, _, _ in at_sink for t in ids] == ["t1", "t2"]
        assert at_sink[0][1:] == (0, 0)
        if len(at_sink) == 2:  # t2 arrived after t1's round had begun: t1's output stored, t2 unacked
            ack_floor, stored = at_sink[1][1:]
            assert ack_floor <= 1 and stored == 1
        info = await acked(js, "TARGETS", consumer, 2)
        assert info.num_redelivered == 0 and info.num_pending == 0
        assert toy.handled == ["t1", "t2"]

        # the same event published again is stored once (Nats-Msg-Id)
        await binding.publish([ev.TargetApproved(id="t1", ts_event=1, target=target(client, 1))])
        assert await stored_count(js, "TARGETS", f"target.approved.{client}.>") == 2


async def test_bad_inputs_become_dead_letters_and_the_next_good_one_is_handled(
        nc: Client, js: JetStreamContext) -> None:
    client, service = unique("c"), unique("toy")
    subject = f"target.proposed.{client}.binance.BTCUSDT"
    async with running(nc, lambda out: Toy(SimClock(), out, client), service) as (_, toy):
        async with Collector(nc, sj.dead_letter(service)) as dlq, \
                Collector(nc, f"target.approved.{client}.>") as approved:
            await js.publish(subject, b"\x93not an event")
            await js.publish(subject, codec.encode(ev.Trade(id="x", ts_event=1, venue="binance", symbol="BTCUSDT",
                                                            price=Decimal(1), qty=Decimal(1), aggressor="buy")))
            await js.publish(subject, codec.encode(target(client, 1, qty="-1")))
            await js.publish(subject, codec.encode(target(client, 2)))
            [good] = await approved.wait(1)
            letters = [codec.decode(m.data, ev.DeadLetter) for m in await dlq.wait(3)]
    assert codec.decode(good.data, ev.TargetApproved).id == "t2"
    assert toy.handled == ["t1", "t2"]
    garbage, wrong_type, raised = letters
    assert garbage.service == service and garbage.subject == subject and garbage.payload == b"\x93not an event"
    assert garbage.reason.startswith(f"cannot decode the message on {subject}: ")
    assert wrong_type.reason.endswith("Invalid value 'Trade' - at `$.type`")  # the wrong event type
    assert "on_target_position raised ValueError: toy refuses negative qty -1" in raised.reason
    assert len({letter.id for letter in letters}) == 3  # one id per input message: none de-duplicated away


async def test_kill_switch_reaches_a_latest_input_from_a_raw_publish_and_a_kv_put(
        nc: Client, js: JetStreamContext) -> None:
    kv = await js.key_value(sj.CONTROL_BUCKET)
    await kv.put(sj.TRADING_ENABLED_KEY, b"true")  # stored before the actor starts: caught up before on_start
    arrived: asyncio.Queue[bool] = asyncio.Queue()
    client = unique("c")
    make = lambda out: Toy(SimClock(), out, client, seen=lambda _, v: arrived.put_nowait(v))  # noqa: E731
    toy_name = unique("toy")
    async with running(nc, make, toy_name) as (_, toy):
        assert toy.trading_at_start == [True]
        assert await asyncio.wait_for(arrived.get(), 5) is True
        await nc.publish(sj.TRADING_ENABLED, b"false")  # what `nats pub` does
        assert await asyncio.wait_for(arrived.get(), 5) is False
        await kv.put(sj.TRADING_ENABLED_KEY, b"true")
        assert await asyncio.wait_for(arrived.get(), 5) is True
        await kv.put(sj.TRADING_ENABLED_KEY, b" FALSE\n")
        assert await asyncio.wait_for(arrived.get(), 5) is False
        await kv.put(sj.TRADING_ENABLED_KEY, b"true")
        assert await asyncio.wait_for(arrived.get(), 5) is True
        await kv.delete(sj.TRADING_ENABLED_KEY)  # a deleted kill switch means off
        assert await asyncio.wait_for(arrived.get(), 5) is False
        await kv.put(sj.TRADING_ENABLED_KEY, b"true")
        assert await asyncio.wait_for(arrived.get(), 5) is True
        async with Collector(nc, sj.dead_letter(toy_name)) as dlq:
            await kv.put(sj.TRADING_ENABLED_KEY, b"halt")  # unreadable: off, and the value is kept for a person
            assert await asyncio.wait_for(arrived.get(), 5) is False
            [letter] = await dlq.wait(1)
        assert codec.decode(letter.data, ev.DeadLetter).payload == b"halt"
    assert toy.trading == [True, False, True, False, True, False, True, False]


async def test_run_service_answers_ping_status_and_metrics_and_halts_on_start(
        nats_url: str, nc: Client, js: JetStreamContext) -> None:
    name, client, port = unique("svc"), unique("c"), free_port()
    kv = await js.key_value(sj.CONTROL_BUCKET)
    await kv.put(sj.TRADING_ENABLED_KEY, b"true")
    ready = asyncio.Event()
    task = asyncio.create_task(run_service(name, lambda clock, out: Toy(clock, out, client), nats_url=nats_url,
                                           metrics_port=port, halt_on_start=True, on_ready=ready.set))
    try:
        await asyncio.wait_for(ready.wait(), 10)
        pong = json.loads((await nc.request(f"$SRV.PING.bosun-{name}", b"", timeout=2)).data)
        assert pong["name"] == f"bosun-{name}" and pong["type"] == "io.nats.micro.v1.ping_response"
        assert codec.decode_trading_enabled((await kv.get(sj.TRADING_ENABLED_KEY)).value) is False

        async with Collector(nc, f"target.approved.{client}.>") as approved:
            await js.publish(f"target.proposed.{client}.binance.BTCUSDT", codec.encode(target(client, 1)))
            await approved.wait(1)
        status = msgspec.json.decode((await nc.request(urls.status_subject(name), b"", timeout=2)).data)
        assert status == {"client": client, "handled": 1}

        async with httpx.AsyncClient() as http:
            metrics = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
        assert f'bosun_messages_in_total{{input="target.proposed.{client}.>",service="{name}"}} 1.0' in metrics
        assert f'bosun_messages_out_total{{service="{name}"}}' in metrics
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()


class Recorder(Actor):
    """Rebuilds state from a REPLAY input and watches LIVE trades."""

    name = "recorder"

    def __init__(self, clock: Clock, out: Outbox, client: str, venue: str, seen: Callable[[Any], None]) -> None:
        super().__init__(clock, out)
        self.client, self.venue, self.seen = client, venue, seen
        self.positions: list[str] = []
        self.trades: list[str] = []
        self.positions_at_start: list[str] | None = None

    def inputs(self) -> list[Input]:
        return [event_input(f"position.changed.{self.client}.>", ev.PositionChanged, self.on_position_changed,
                            Delivery.REPLAY),
                event_input(f"md.trade.{self.venue}.>", ev.Trade, self.on_trade, Delivery.LIVE)]

    def on_start(self) -> None:
        self.positions_at_start = list(self.positions)

    def on_position_changed(self, position: ev.PositionChanged) -> None:
        self.positions.append(position.id)

    def on_trade(self, trade: ev.Trade) -> None:
        self.trades.append(trade.id)
        self.seen(trade.id)


async def test_replay_catches_up_before_on_start_and_live_sees_only_new_messages(
        nc: Client, js: JetStreamContext) -> None:
    client, venue = unique("c"), unique("v")

    def position(n: int) -> ev.PositionChanged:
        return ev.PositionChanged(id=f"p{n}", ts_event=n, client=client, venue="binance", symbol="BTCUSDT",
                                  qty=Decimal(n), avg_price=Decimal(1), realized_pnl=Decimal(0),
                                  unrealized_pnl=Decimal(0), fees=Decimal(0), fill_id=f"f{n}")

    def trade(n: int) -> ev.Trade:
        return ev.Trade(id=f"x{n}", ts_event=n, venue=venue, symbol="BTCUSDT", price=Decimal(1), qty=Decimal(1),
                        aggressor="buy")

    for n in range(1, 51):
        await js.publish(sj.subject_for(position(n)), codec.encode(position(n)))
    await js.publish(sj.subject_for(trade(0)), codec.encode(trade(0)))  # before the start: not for a LIVE input
    arrived: asyncio.Queue[str] = asyncio.Queue()
    make = lambda out: Recorder(SimClock(), out, client, venue, arrived.put_nowait)  # noqa: E731
    async with running(nc, make, unique("rec")) as (_, recorder):
        assert recorder.positions_at_start == [f"p{n}" for n in range(1, 51)]
        await js.publish(sj.subject_for(trade(1)), codec.encode(trade(1)))
        assert await asyncio.wait_for(arrived.get(), 5) == "x1"
        await js.publish(sj.subject_for(trade(2)), codec.encode(trade(2)))
        assert await asyncio.wait_for(arrived.get(), 5) == "x2"
    assert recorder.trades == ["x1", "x2"]


async def test_run_service_returns_cleanly_on_sigterm(nats_url: str) -> None:
    ready = asyncio.Event()
    task = asyncio.create_task(run_service(unique("svc"), lambda clock, out: Toy(clock, out, unique("c")),
                                           nats_url=nats_url, on_ready=ready.set))
    await asyncio.wait_for(ready.wait(), 10)  # the handlers are installed by now
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(task, 10)
    assert task.result() is None
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handler removed on the way out


def test_price_snapshots_for_one_key_coalesce_to_the_newest() -> None:
    def snap(symbol: str, ts: int) -> ev.PriceSnapshot:
        return ev.PriceSnapshot(id=f"{symbol}{ts}", ts_event=ts, venue="binance", symbol=symbol, price=Decimal(ts))

    kept = _coalesce_prices([snap("BTC", 1), TradingEnabled(False), snap("ETH", 5), snap("BTC", 3), snap("BTC", 2)])
    assert kept == [snap("BTC", 3), TradingEnabled(False), snap("ETH", 5)]


def test_durable_names_are_valid_and_distinct() -> None:
    a, b = durable_name("risk", "a_b.c"), durable_name("risk", "a.b_c")
    assert a != b and all(ch.isalnum() or ch in "_-" for ch in a + b)
    assert durable_name("portfolio", "order.filled.>").startswith("portfolio-order_filled_all-")


async def test_a_trace_follows_each_message_through_the_handler_in_rounds_of_many(
        nc: Client, js: JetStreamContext) -> None:
    from opentelemetry import propagate, trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exported = InMemorySpanExporter()
    provider = TracerProvider()
    processor = SimpleSpanProcessor(exported)
    provider.add_span_processor(processor)
    telemetry.use_tracer_provider(provider, processor)  # the process's first and only provider: the rest are no-ops
    client, service = unique("c"), unique("toy")
    await js.publish(sj.TRADING_ENABLED, b"true")  # handled, publishes nothing: no span
    upstream = {}
    for n in range(1, 21):  # stored before the service starts: they reach it together
        with provider.get_tracer("test").start_as_current_span(f"signal {n}") as span:
            headers: dict[str, str] = {}
            propagate.inject(headers)
            t = target(client, n)
            await js.publish(sj.subject_for(t), codec.encode(t), headers=headers)
        upstream[t.id] = span.get_span_context()
    try:
        async with Collector(nc, f"target.approved.{client}.>") as approved, \
                running(nc, lambda out: Toy(SimClock(), out, client), service):
            out = await approved.wait(20)
    finally:
        provider.shutdown()  # later tests record nothing
    handled = [s for s in exported.get_finished_spans() if s.name == f"{service} target.proposed.{client}.>"]
    assert len(handled) == 20
    assert not [s for s in exported.get_finished_spans() if s.name == f"{service} {sj.TRADING_ENABLED}"]
    by_parent = {s.parent.span_id: s for s in handled}
    for msg in out:  # each output carries the span of its own input, whose parent is that input's upstream
        sent = upstream[codec.decode(msg.data, ev.TargetApproved).id]
        span = by_parent[sent.span_id]
        assert span.context.trace_id == sent.trace_id
        downstream = trace.get_current_span(propagate.extract(msg.headers)).get_span_context()
        assert (downstream.trace_id, downstream.span_id) == (span.context.trace_id, span.context.span_id)
    # several messages were handled in one round (a span began before the previous one ended),
    # not one round (one publish window and its acks) per message
    spans = sorted(handled, key=lambda s: s.start_time)
    assert any(b.start_time < a.end_time for a, b in zip(spans, spans[1:]))


async def test_a_failing_on_start_stops_the_binding_instead_of_looking_ready(nc: Client) -> None:
    class Broken(Toy):
        def on_start(self) -> None:
            raise RuntimeError("cannot cancel restored orders")

    binding = NatsBinding(nc, unique("toy"))
    ready = asyncio.Event()
    with pytest.raises(RuntimeError, match="on_start failed: RuntimeError: cannot cancel restored orders"):
        await asyncio.wait_for(binding.run(Broken(SimClock(), binding.outbox, unique("c")), None, ready), 10)
    assert not ready.is_set()


async def test_a_durable_message_redelivered_after_it_was_handled_is_not_handled_again(
        nc: Client, js: JetStreamContext) -> None:
    from nats.aio.msg import Msg

    from bosun.runtime.nats_binding import _Route

    client, service = unique("c"), unique("toy")
    binding = NatsBinding(nc, service)
    toy = Toy(SimClock(), binding.outbox, client)
    [durable_input, _] = toy.inputs()
    t = target(client, 1)
    await js.publish(sj.subject_for(t), codec.encode(t))
    sub = await js.pull_subscribe(durable_input.subject, durable=durable_name(service, durable_input.subject))
    [msg] = await sub.fetch(1, timeout=5)
    route = _Route(durable_input, "TARGETS", service)
    await binding._deliver([(route, msg)])
    # The same stream message delivered again, as after a late or lost ack.
    again = Msg(_client=nc, subject=msg.subject, reply=msg.reply, data=msg.data, headers=msg.headers)
    await binding._deliver([(route, again)])
    assert toy.handled == [t.id]


async def test_an_older_message_a_killed_process_never_acked_is_handled_after_newer_ones(
        nc: Client, js: JetStreamContext) -> None:
    """After kill -9, what the dead process held unacked comes again once its ack wait runs out,
    behind newer messages: older in the stream, yet never handled here, so it is handled."""
    from bosun.runtime.nats_binding import _Route

    client, service = unique("c"), unique("toy")
    binding = NatsBinding(nc, service)
    toy = Toy(SimClock(), binding.outbox, client)
    [durable_input, _] = toy.inputs()
    older, newer = target(client, 1), target(client, 2)
    for t in (older, newer):
        await js.publish(sj.subject_for(t), codec.encode(t))
    sub = await js.pull_subscribe(durable_input.subject, durable=durable_name(service, durable_input.subject))
    first, second = await sub.fetch(2, timeout=5)
    route = _Route(durable_input, "TARGETS", service)
    await binding._deliver([(route, second)])
    await binding._deliver([(route, first)])
    assert toy.handled == [newer.id, older.id]


async def test_a_restart_gets_what_a_dead_process_left_unacked_at_once_not_after_the_ack_wait(
        nats_url: str, nc: Client, js: JetStreamContext) -> None:
    """A previous incarnation took messages from the durable and died without acking them: the next
    one rewinds the consumer to its ack floor and handles them within seconds (ACK_WAIT_S is 60),
    each once, before and with a newer one."""
    from bosun.runtime.nats_binding import ACK_WAIT_S

    client, service = unique("c"), unique("toy")
    subject, consumer = f"target.proposed.{client}.>", durable_name(service, f"target.proposed.{client}.>")
    async with running(nc, lambda out: Toy(SimClock(), out, client), service):
        pass  # the first incarnation creates the durable consumer, acks nothing, stops
    dead = await nats.connect(nats_url)
    try:
        sub = await dead.jetstream().subscribe(subject, durable=consumer, stream="TARGETS", manual_ack=True)
        for n in (1, 2, 3):
            await js.publish(sj.subject_for(target(client, n)), codec.encode(target(client, n)))
        taken = [await sub.next_msg(timeout=5) for _ in range(3)]
        assert [m.metadata.num_delivered for m in taken] == [1, 1, 1]
    finally:
        await dead.close()  # gone with the three unacked, as after a kill -9
    deadline = time.monotonic() + 5
    while (info := await js.consumer_info("TARGETS", consumer)).push_bound:  # the server sees the close
        assert time.monotonic() < deadline, "the dead connection's subscription is still bound after 5 s"
        await asyncio.sleep(0.01)  # polling the consumer with a deadline
    assert info.num_ack_pending == 3
    await js.publish(sj.subject_for(target(client, 4)), codec.encode(target(client, 4)))

    restarted = time.monotonic()
    async with Collector(nc, f"target.approved.{client}.>") as approved:
        async with running(nc, lambda out: Toy(SimClock(), out, client), service) as (_, toy):
            await approved.wait(4, timeout=15)
            recovery_s = time.monotonic() - restarted
            assert toy.handled == ["t1", "t2", "t3", "t4"]
            deadline = time.monotonic() + 10
            while (info := await js.consumer_info("TARGETS", consumer)).num_ack_pending or \
                    info.ack_floor.stream_seq < info.delivered.stream_seq:
                assert time.monotonic() < deadline, f"not all acked: {info}"
                await asyncio.sleep(0.02)  # polling the consumer with a deadline
    assert recovery_s < ACK_WAIT_S / 4, recovery_s


async def test_a_publish_waits_out_a_stream_without_leader_past_the_third_attempt(tmp_path, caplog) -> None:
    """While a stream elects its leader (5 to 8 s on the cluster) a publish fails at once with no
    responders: the binding goes on trying, and the event is stored once the stream answers."""
    with EmbeddedNats(tmp_path / "nats") as server:
        nc = await nats.connect(server.url)
        try:
            binding = NatsBinding(nc, unique("toy"))
            t = target(unique("c"), 1)
            publishing = asyncio.create_task(binding.publish([t]))
            deadline = time.monotonic() + 10
            while not any("publish attempt 3 failed" in r.getMessage() for r in caplog.records):
                assert not publishing.done(), f"the publish gave up: {publishing.exception()!r}"
                assert time.monotonic() < deadline, "no third failed attempt within 10s"
                await asyncio.sleep(0.02)  # polling the log with a deadline
            js = nc.jetstream()
            await js.add_stream(name="TARGETS", subjects=["target.>"])  # the stream answers again
            await asyncio.wait_for(publishing, 10)
            assert await stored_count(js, "TARGETS", sj.subject_for(t)) == 1
        finally:
            await nc.close()


async def test_replay_pacing_asks_again_while_no_stream_answers(js: JetStreamContext) -> None:
    """A consumers request nobody answers (a stream electing its leader) is not fatal to ingest's
    replay pacing: it is asked again until the pacing's own deadline."""
    t0 = time.monotonic()
    assert await until_behind_at_most(js, unique("NO_STREAM"), 0, 0.3) is False
    assert time.monotonic() - t0 >= 0.3


def _decode_target(data: bytes) -> ev.TargetPosition:
    return codec.decode(data, ev.TargetPosition)


class Reader(Actor):
    """Reads one client's targets from the start (the same input as another Reader would) and
    approves each under an id of its own; `refuse` makes its handler raise on a negative qty."""

    name = "reader"

    def __init__(self, clock: Clock, out: Outbox, client: str, tag: str, refuse: bool = False):
        super().__init__(clock, out)
        self.client, self.tag, self.refuse = client, tag, refuse
        self.seen: list[str] = []
        self.seen_at_start: list[str] | None = None

    def inputs(self) -> list[Input]:
        return [Input(f"target.proposed.{self.client}.>", self.on_target, _decode_target, Delivery.REPLAY)]

    def on_start(self) -> None:
        self.seen_at_start = list(self.seen)

    def on_target(self, target: ev.TargetPosition) -> None:
        self.seen.append(target.id)
        if self.refuse and target.qty < 0:
            raise ValueError("refused")
        self.out.publish(ev.TargetApproved(id=f"{self.tag}-{target.id}", ts_event=target.ts_event, target=target))


async def test_actors_of_one_binding_reading_one_subject_share_one_subscription(
        nc: Client, js: JetStreamContext) -> None:
    client = unique("c")
    for n in (1, 2):
        await js.publish(sj.subject_for(target(client, n)), codec.encode(target(client, n)))
    binding = NatsBinding(nc, unique("pair"))
    first = Reader(SimClock(), binding.outbox, client, "a", refuse=True)
    second = Reader(SimClock(), binding.outbox, client, "b")
    async with Collector(nc, f"target.approved.{client}.>") as approved, \
            Collector(nc, sj.dead_letter(binding.service)) as dead:
        ready = asyncio.Event()
        task = asyncio.create_task(binding.run(first, None, ready, also=[second]))
        try:
            await asyncio.wait_for(ready.wait(), 10)
            assert first.seen_at_start == second.seen_at_start == ["t1", "t2"]  # both caught up before start
            for t in (target(client, 3, "-1"), target(client, 4)):
                await js.publish(sj.subject_for(t), codec.encode(t))
            out = await approved.wait(7)
            [letter] = await dead.wait(1)
            consumers = [c for c in await js.consumers_info("TARGETS")
                         if c.config.filter_subject == f"target.proposed.{client}.>"]
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    ids = [codec.decode(m.data, ev.TargetApproved).id for m in out]
    # each message to each actor in turn; the one that raised cost only its own output
    assert ids == ["a-t1", "b-t1", "a-t2", "b-t2", "b-t3", "a-t4", "b-t4"]
    assert "Reader.on_target raised ValueError: refused" in codec.decode(letter.data, ev.DeadLetter).reason
    assert first.seen == second.seen == ["t1", "t2", "t3", "t4"]
    assert len(consumers) == 1
