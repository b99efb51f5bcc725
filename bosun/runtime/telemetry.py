"""Structured logs (one JSON object per line on stderr), the Prometheus metrics every
service exports, and OpenTelemetry traces. Labels stay low-cardinality: the service and the
input filter, never a full subject; a client id, a market (`venue.symbol`) or a limit's name,
which the config bounds. The state gauges (trading, orders, prices, positions, PnL) are set by
the service shell from the actor's `status()` (bosun.apps.status_metrics): actors never touch
Prometheus.

Traces follow a market event through the services: each handled message that publishes
something is a span whose parent comes from the message's `traceparent` header, and what
the handler publishes carries the span on (a round of many messages makes a span per such
message, ended once the round's outputs are stored; one that publishes nothing makes none).
A venue's report on an order (accepted, filled, canceled...) is made on a later message, often
market data: it is a child of its order's SubmitOrder instead, linked to that message's span,
so a position change traces back to the signal behind it. Spans are exported only when asked,
with the standard variable OTEL_TRACES_EXPORTER: `console` (JSON to stderr) or `otlp` (needs
the opentelemetry-exporter-otlp package); unset, no span is made and no context is read or
written per message."""

from __future__ import annotations

import logging
import os
import random
import re
import sys
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import msgspec
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, SpanContext, SpanKind, TraceFlags
from prometheus_client import Counter, Gauge, Histogram

from bosun.runtime.config import ConfigError
from proto import events as ev

if TYPE_CHECKING:  # the SDK is loaded only to trace (setup_tracing)
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

MESSAGES_IN = Counter("bosun_messages_in", "Input messages handled", ["service", "input"])
MESSAGES_OUT = Counter("bosun_messages_out", "Messages published to JetStream", ["service"])
DEAD_LETTERS = Counter("bosun_dead_letters", "Inputs sent to the dead-letter subject", ["service"])
HANDLER_SECONDS = Histogram(
    "bosun_handler_seconds", "One input's round, from its start to the ack: decode, handler, effects, publish "
    "(the wait in the queue before the round is not in it)",
    ["service", "input"],
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0))
RECONNECTS = Counter("bosun_nats_reconnects", "Reconnections to NATS after losing the connection", ["service"])
CONSUMER_PENDING = Gauge(
    "bosun_consumer_pending_messages", "Messages of the input's stream not yet delivered to the service, "
    "as of the last one delivered", ["service", "input"])
CONSUMER_ACK_PENDING = Gauge(
    "bosun_consumer_ack_pending_messages", "Messages delivered to the service's durable consumer and not yet acked, "
    "as JetStream last reported them", ["service", "input"])

TRADING_ENABLED = Gauge("bosun_trading_enabled", "1 while the service sees trading on (KV control), else 0",
                        ["service"])
OPEN_ORDERS = Gauge("bosun_open_orders", "Orders working at a venue, as execution sees them", ["client"])
FILLS = Counter("bosun_fills", "Fills applied by execution", ["client"])
REJECTS = Counter("bosun_order_rejects", "Orders refused: by the venue, by execution's guard or in a dry run",
                  ["client"])
PRICE_EVENT_TIME = Gauge("bosun_price_event_timestamp_seconds", "Event time of the last price ingested",
                         ["market"])
BREACHES = Counter("bosun_risk_breaches", "Targets refused by a risk limit", ["limit"])
SCOPE_STATE = Gauge("bosun_scope_state", "A trading scope's state as risk sees it: 0 active, 1 reducing, 2 halted "
                    "(global: halted too while the kill switch is off; a client's own switch as switch.<client>)",
                    ["scope", "client"])
POSITION = Gauge("bosun_position", "Position in base units (negative: short)", ["client", "market"])
EQUITY = Gauge("bosun_equity", "Capital plus realized and unrealized PnL less fees, in quote units", ["client"])
PNL = Gauge("bosun_pnl", "PnL in quote units: realized (after fees and funding) and unrealized", ["client", "kind"])
FUNDING = Gauge("bosun_funding_paid", "Perpetual funding paid (< 0: received), in quote units; within realized PnL",
                ["client"])
EXPOSURE = Gauge("bosun_exposure", "Positions valued at their marks, in quote units: gross (sum of |qty| x mark) "
                 "and net (sum of qty x mark)", ["client", "kind"])
DRAWDOWN = Gauge("bosun_drawdown", "Equity below its highest since the service started, in quote units", ["client"])
UNMARKED = Gauge("bosun_unmarked_markets", "Markets a client holds whose price is stale or missing (marked at the "
                 "last known price)", ["client"])

# what every LogRecord carries; anything else was passed with `extra=` and is logged as a field
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
_encoder = msgspec.json.Encoder(enc_hook=repr)  # a field msgspec cannot encode is logged as its repr


class JsonLines(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        line.update((k, v) for k, v in vars(record).items() if k not in _STANDARD)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return _encoder.encode(line).decode()


def setup_logging(service: str, level: int = logging.INFO) -> None:
    """Route the root logger to stderr as JSON lines tagged with `service` (replaces handlers)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLines(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


_tracing = False
_sink: SpanSink | None = None
SPANS_PER_EXPORT = 2048  # ~200 KB over OTLP; at most 4 batches wait (~6 MB) while the collector is away


def tracing() -> bool:
    """Whether spans are exported: when not, the hot path skips making them at all."""
    return _tracing


def setup_tracing(service: str, exporter: str | None) -> None:
    """Install a tracer provider for `service` exporting to `exporter` (console | otlp | none).
    With OTEL_TRACES_SAMPLER=always_off no span would ever be recorded: none is made, as with
    no exporter, rather than paying for spans and context per message for nothing."""
    if exporter in (None, "", "none"):
        return
    if os.environ.get("OTEL_TRACES_SAMPLER", "").strip().lower() == "always_off":
        logging.getLogger(__name__).info("OTEL_TRACES_SAMPLER=always_off: no span is made")
        return
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    if exporter == "console":
        span_exporter = ConsoleSpanExporter(out=sys.stderr)
    elif exporter == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            raise ConfigError("OTEL_TRACES_EXPORTER=otlp needs the opentelemetry-exporter-otlp package") from None
        span_exporter = OTLPSpanExporter()
    else:
        raise ConfigError(f"OTEL_TRACES_EXPORTER={exporter!r}: bosun exports to console, otlp or none")
    provider = TracerProvider(resource=Resource.create({"service.name": f"bosun-{service}"}))
    # Batches of 2,048 spans rather than 512: a quarter of the requests, each ~0.3 ms of the
    # exporter's CPU (bench/bench_tracing.py); the OTEL_BSP_* variables still decide when set.
    batching = {} if {"OTEL_BSP_MAX_QUEUE_SIZE", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE"} & set(os.environ) else {
        "max_queue_size": 4 * SPANS_PER_EXPORT, "max_export_batch_size": SPANS_PER_EXPORT}
    processor = BatchSpanProcessor(span_exporter, **batching)
    provider.add_span_processor(processor)
    use_tracer_provider(provider, processor)


def use_tracer_provider(provider: TracerProvider, processor: SpanProcessor) -> None:
    """The process's tracer provider (OpenTelemetry takes only the first) and the processor it
    was given, which the bindings' spans go to: spans from now on."""
    global _tracing, _sink
    trace.set_tracer_provider(provider)
    _sink = SpanSink(provider, processor)
    _tracing = True


# ---------------------------------------------------------------------------- spans of a binding
# The W3C `traceparent` header is read and written by hand, as a string until the span is handed
# to the SDK after the round: OpenTelemetry's propagate.extract and inject cost ~10 us a message
# through their generic carriers. bosun sets no `tracestate`.
_TRACEPARENT = re.compile(r"00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}")  # ids not all zeros
_SPAN_ID = slice(36, 52)  # in a traceparent: 00-<trace id, 32>-<span id, 16>-<flags, 2>
_SUBMIT_ID = f"{ev.SubmitOrder.__name__}:"  # the Nats-Msg-Id of a SubmitOrder: ev.msg_id
# what a venue reports about one order: made on a later message, a child of the order's SubmitOrder
_ORDER_REPORTS = (ev.OrderAccepted, ev.OrderRejected, ev.OrderModified, ev.OrderCanceled, ev.OrderFilled)
ORDERS_REMEMBERED = 10_000  # SubmitOrder contexts, ~3 MB; an older order's reports are the message's children


def valid_traceparent(header: str | None) -> str | None:
    """`header` if it is a W3C traceparent (version 00), else None: no parent, a new trace."""
    return header if header and _TRACEPARENT.fullmatch(header) else None


def span_context(traceparent: str | None) -> SpanContext | None:
    """The span a W3C traceparent (version 00) names; None if there is none or it is malformed."""
    return None if valid_traceparent(traceparent) is None else _context(traceparent)


def _context(traceparent: str, remote: bool = True) -> SpanContext:
    return SpanContext(int(traceparent[3:35], 16), int(traceparent[_SPAN_ID], 16), is_remote=remote,
                       trace_flags=TraceFlags(int(traceparent[53:], 16)))


class OrderContexts:
    """The traceparent of each order's SubmitOrder, by client order id, as a binding handled
    them (the newest ORDERS_REMEMBERED): its reports come on other messages."""

    def __init__(self, limit: int = ORDERS_REMEMBERED) -> None:
        self._limit = limit
        # oldest first; an OrderedDict pops its first in O(1) (a dict's `next(iter(...))` walks
        # past the dummies its deletions leave: bosun.model.recent)
        self._by_order: OrderedDict[str, str] = OrderedDict()

    def note(self, headers: Mapping[str, str]) -> None:
        """Remember a SubmitOrder's context from its message headers (any other message: nothing)."""
        msg_id = headers.get("Nats-Msg-Id")
        if msg_id is None or not msg_id.startswith(_SUBMIT_ID):
            return
        parent = valid_traceparent(headers.get("traceparent"))
        if parent is None:
            return
        self._by_order[msg_id[len(_SUBMIT_ID):]] = parent
        if len(self._by_order) > self._limit:
            self._by_order.popitem(last=False)

    def of(self, output: object) -> str | None:
        """The SubmitOrder traceparent `output` belongs under, if it reports on a remembered order."""
        return self._by_order.get(output.client_order_id) if isinstance(output, _ORDER_REPORTS) else None


def _random_id(bits: int) -> int:
    while not (found := random.getrandbits(bits)):  # zero is no id (W3C)
        pass
    return found


def _hashed_once(resource: Resource) -> Resource:
    """`resource`, its hash computed once: the OTLP encoder groups the spans by their resource,
    hashing it for each span (a json.dumps of its attributes, a fifth of the encoder's work)."""
    from opentelemetry.sdk.resources import Resource

    class HashedOnce(Resource):
        def __hash__(self) -> int:
            return hashed

    hashed = hash(resource)
    return HashedOnce(resource.attributes, resource.schema_url)


class SpanSink:
    """Where a binding's spans go once ended: the SDK's span processor (its batching, and the
    exporter the OTEL_* variables chose), as ReadableSpans. bosun makes them itself rather than
    through the SDK's Tracer, whose start_span costs ~15 us before the message's outputs can go
    out: only the new span's traceparent is made then, the span after the outputs are stored. The
    sampler (OTEL_TRACES_SAMPLER) decides at a trace's root; a child follows its parent's sampled
    flag, as the default parentbased samplers do."""

    def __init__(self, provider: TracerProvider, processor: SpanProcessor) -> None:
        from opentelemetry.sdk.trace import ReadableSpan
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope

        self._readable = ReadableSpan
        self._processor = processor
        self._resource = _hashed_once(provider.resource)
        self._sampler = provider.sampler
        self._scope = InstrumentationScope("bosun")

    def new(self, name: str, kind: SpanKind, parent: str | None) -> str:
        """A new span's traceparent: in its parent's trace, or at a root in a new one, sampled or not."""
        if parent is not None:
            return f"{parent[:_SPAN_ID.start]}{_random_id(64):016x}{parent[_SPAN_ID.stop:]}"
        trace_id = _random_id(128)
        sampled = self._sampler.should_sample(Context(), trace_id, name, kind).decision.is_sampled()
        return f"00-{trace_id:032x}-{_random_id(64):016x}-{'01' if sampled else '00'}"

    def ended(self, name: str, kind: SpanKind, span: str, parent: str | None, link: str | None, start_ns: int,
              end_ns: int) -> None:
        if int(span[53:], 16) & TraceFlags.SAMPLED:  # (the traceparents were checked when made or read)
            self._processor.on_end(self._readable(
                name=name, context=_context(span, False), parent=_context(parent) if parent else None,
                resource=self._resource, kind=kind, links=(Link(_context(link)),) if link else (),
                start_time=start_ns, end_time=end_ns, instrumentation_scope=self._scope))


class RoundSpans:
    """The spans of one round of a binding and the `traceparent` of each output they made, by
    the output's identity (outputs live until published). End them once the outputs are stored."""

    def __init__(self, orders: OrderContexts, sink: SpanSink | None = None) -> None:
        self.parents: dict[int, str] = {}
        self._orders = orders
        self._sink = sink or _sink
        self._made: list[tuple[str, SpanKind, str, str | None, str | None, int]] = []

    def handled(self, name: str, kind: SpanKind, start_ns: int, outputs: Sequence[object],
                headers: Mapping[str, str] | None = None) -> None:
        """One input (its message's `headers`; none for a feed) handled from `start_ns`, which made
        `outputs`: a span for them, child of the input's span; an order's reports go under a span
        of their own, child of the order's SubmitOrder and linked to the input's span."""
        if headers:
            self._orders.note(headers)
        if not outputs:
            return
        parent = valid_traceparent(headers.get("traceparent")) if headers else None
        own: list[object] = []
        orders: dict[str, list[object]] = {}  # a SubmitOrder's traceparent -> its reports
        for out in outputs:
            order = self._orders.of(out)
            if order is None or order == parent:
                own.append(out)
            else:
                orders.setdefault(order, []).append(out)
        if own:
            self.add(own, name, kind, start_ns, parent)
        for order, reports in orders.items():
            self.add(reports, name, kind, start_ns, order, parent)

    def add(self, outputs: Sequence[object], name: str, kind: SpanKind, start_ns: int, parent: str | None,
            link: str | None = None) -> None:
        span = self._sink.new(name, kind, parent)
        for out in outputs:
            self.parents[id(out)] = span
        self._made.append((name, kind, span, parent, link, start_ns))

    def carry(self, source: object, outputs: Sequence[object]) -> None:
        """`outputs` have the parent `source` has (what the edge reported doing its effect)."""
        if (carried := self.parents.get(id(source))) is not None:
            self.parents.update((id(o), carried) for o in outputs)

    def end(self) -> None:
        now = time.time_ns()
        for made in self._made:
            self._sink.ended(*made, now)
