"""The spans a binding makes for a round, and the W3C context it reads and writes by hand: an
order's reports go under its SubmitOrder, linked to the message they were made on."""

from __future__ import annotations

from decimal import Decimal

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from bosun.runtime.telemetry import OrderContexts, RoundSpans, SpanSink, span_context
from proto import events as ev

MARKET = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"  # the span that published a bar
SUBMIT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"  # the span that published a SubmitOrder


@pytest.fixture
def exported() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def sink(exported) -> SpanSink:
    return SpanSink(TracerProvider(), SimpleSpanProcessor(exported))  # not the process's: nothing else traces


def fill(order: str) -> ev.OrderFilled:
    return ev.OrderFilled(id=f"{order}.f", ts_event=1, client_order_id=order, client="alice", venue="binance",
                          symbol="BTCUSDT", side="buy", qty=Decimal("0.01"), price=Decimal("60000"),
                          fee=Decimal("0.6"))


def submitted(order: str, parent: str = SUBMIT) -> dict[str, str]:
    return {"Nats-Msg-Id": f"SubmitOrder:{order}", "traceparent": parent}


def test_a_traceparent_is_read_as_w3c_says() -> None:
    parent = span_context(MARKET)
    assert (parent.trace_id, parent.span_id, parent.trace_flags.sampled, parent.is_remote) == (
        0x0af7651916cd43dd8448eb211c80319c, 0xb7ad6b7169203331, True, True)


@pytest.mark.parametrize("header", [
    None, "", "garbage", MARKET.upper(), MARKET + "-00", "01" + MARKET[2:],
    "00-00000000000000000000000000000000-b7ad6b7169203331-01",  # the trace id may not be all zeros
    "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",  # nor the span id
])
def test_a_missing_or_malformed_traceparent_names_no_parent(header) -> None:
    assert span_context(header) is None


def test_only_a_submit_orders_context_is_remembered_and_only_the_newest_orders() -> None:
    orders = OrderContexts(limit=2)
    orders.note({"Nats-Msg-Id": "Bar:x", "traceparent": MARKET})  # not an order
    orders.note({"Nats-Msg-Id": "SubmitOrder:o0"})  # published untraced
    for n in range(3):
        orders.note(submitted(f"o{n}"))
    assert orders.of(fill("o0")) is None  # forgotten: the oldest of three
    assert [orders.of(fill(f"o{n}")) for n in (1, 2)] == [SUBMIT] * 2
    assert orders.of(ev.CancelOrder(id="o1.cancel", ts_event=1, client_order_id="o1", client="alice",
                                    venue="binance", symbol="BTCUSDT", reason="x")) is None  # a command


def test_an_orders_report_made_on_a_market_event_is_a_child_of_its_submit_order_linked_to_the_event(
        sink, exported) -> None:
    orders = OrderContexts()
    order_log = RoundSpans(orders, sink)
    order_log.handled("execution order.>", SpanKind.CONSUMER, 1, [], submitted("o1"))  # publishes nothing
    order_log.end()
    assert not exported.get_finished_spans()

    spans = RoundSpans(orders, sink)
    report, other, unknown = fill("o1"), ev.MarketHalted(id="h", ts_event=1, venue="binance", symbol="BTCUSDT",
                                                         reason="x"), fill("o9")
    spans.handled("execution md.>", SpanKind.CONSUMER, 1, [report, other, unknown], {"traceparent": MARKET})
    spans.end()
    made = {s.context.span_id: s for s in exported.get_finished_spans()}
    assert len(made) == 2
    on_event = made[span_context(spans.parents[id(other)]).span_id]
    assert spans.parents[id(unknown)] == spans.parents[id(other)]  # an order not remembered: the event's child
    assert on_event.parent.span_id == span_context(MARKET).span_id and not on_event.links
    under_order = made[span_context(spans.parents[id(report)]).span_id]
    assert (under_order.context.trace_id, under_order.parent.span_id) == (span_context(SUBMIT).trace_id,
                                                                          span_context(SUBMIT).span_id)
    assert [link.context.span_id for link in under_order.links] == [span_context(MARKET).span_id]
    assert under_order.name == "execution md.>" and under_order.start_time == 1


def test_a_report_on_its_own_submit_order_makes_one_span_and_a_feed_starts_a_trace(sink, exported) -> None:
    spans = RoundSpans(OrderContexts(), sink)
    accepted = ev.OrderAccepted(id="o1.a", ts_event=1, client_order_id="o1", venue_order_id="v1", client="alice",
                                venue="binance", symbol="BTCUSDT")
    spans.handled("execution order.>", SpanKind.CONSUMER, 1, [accepted], submitted("o1"))
    bar = ev.Bar(id="b", ts_event=1, venue="binance", symbol="BTCUSDT", ts_open=0, open=Decimal(1), high=Decimal(1),
                 low=Decimal(1), close=Decimal(1), volume=Decimal(1), interval="1m")
    spans.handled("ingest feed", SpanKind.PRODUCER, 1, [bar])
    spans.end()
    on_submit, feed = sorted(exported.get_finished_spans(), key=lambda s: s.name)
    assert on_submit.parent.span_id == span_context(SUBMIT).span_id and not on_submit.links
    assert feed.parent is None and feed.kind is SpanKind.PRODUCER
    assert span_context(spans.parents[id(bar)]).trace_id == feed.context.trace_id


def test_the_sampler_decides_at_a_root_and_a_child_follows_its_parents_sampled_flag(exported) -> None:
    spans = RoundSpans(OrderContexts(), SpanSink(TracerProvider(sampler=ALWAYS_OFF), SimpleSpanProcessor(exported)))
    root, child, child_of_unsampled = object(), object(), object()
    spans.handled("ingest feed", SpanKind.PRODUCER, 1, [root])
    spans.handled("risk target.>", SpanKind.CONSUMER, 1, [child], {"traceparent": MARKET})
    spans.handled("risk target.>", SpanKind.CONSUMER, 1, [child_of_unsampled], {"traceparent": MARKET[:-2] + "00"})
    spans.end()
    assert [spans.parents[id(o)][-2:] for o in (root, child, child_of_unsampled)] == ["00", "01", "00"]
    [made] = exported.get_finished_spans()  # only the sampled one is exported
    assert made.parent.span_id == span_context(MARKET).span_id
