"""W3C trace context across the hops, signal to position change: a paced `bosun up --replay`
exporting its spans over OTLP/HTTP as compose and Nomad set it (OTEL_TRACES_EXPORTER=otlp,
OTEL_EXPORTER_OTLP_ENDPOINT) to a collector stand-in in this test; each SubmitOrder's and each
PositionChanged's `traceparent` is followed up through the spans received, parent by parent, to
the market event that began its trace."""

from __future__ import annotations

import subprocess
import threading
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import NamedTuple

import asyncpg
import nats
import pytest
from nats.aio.msg import Msg
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bosun.runtime.embedded import EmbeddedNats
from tests.builders import ALICE_SMA
from tests.conftest import with_database
from tests.datafiles import BTC_1M, data_file, write_slice
from tests.natshelp import stored_count, stream_messages
from tests.processes import bosun_argv, server_env

pytestmark = pytest.mark.integration

BARS = 150
SPEED = "600"  # a bar every 0.1 s: paced as live data is, each bar handled before the next comes


class Span(NamedTuple):
    trace_id: str
    parent_id: str | None
    service: str


@dataclass
class Traced:
    spans: dict[str, Span]  # span id (hex) -> span, every service's
    orders: list[Msg]  # SubmitOrder, as stored
    changes: list[Msg]  # PositionChanged, as stored


class Collector(ThreadingHTTPServer):
    """An OpenTelemetry collector stand-in: OTLP/HTTP (protobuf) on /v1/traces, spans kept."""

    def __init__(self) -> None:
        self.spans: dict[str, Span] = {}
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Receiver)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def received(self, body: bytes) -> None:
        request = ExportTraceServiceRequest.FromString(body)
        with self.lock:
            for resource in request.resource_spans:
                service = next(a.value.string_value for a in resource.resource.attributes if a.key == "service.name")
                for scope in resource.scope_spans:
                    for span in scope.spans:
                        self.spans[span.span_id.hex()] = Span(span.trace_id.hex(), span.parent_span_id.hex() or None,
                                                              service.removeprefix("bosun-"))


class _Receiver(BaseHTTPRequestHandler):
    server: Collector

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        ok = self.path == "/v1/traces"
        if ok:
            self.server.received(body)
        self.send_response(200 if ok else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture(scope="module")
async def traced(tmp_path_factory: pytest.TempPathFactory, database_url: str) -> AsyncIterator[Traced]:
    tmp = tmp_path_factory.mktemp("traced")
    replay = write_slice(data_file(BTC_1M), tmp / "BTCUSDT_1m.csv", BARS)
    (tmp / "bosun.toml").write_text(ALICE_SMA)
    name = f"t_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(database_url)
    collector = Collector()
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        with EmbeddedNats(tmp / "nats") as server:
            env = server_env(server.url, with_database(database_url, name)) | {
                "OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint}
            done = subprocess.run(bosun_argv("up", "--config", str(tmp / "bosun.toml"), "--state-dir",
                                             str(tmp / "state"), "--replay", str(replay), "--speed", SPEED,
                                             "--exit-when-done"),
                                  env=env, capture_output=True, text=True, timeout=180)
            assert done.returncode == 0, done.stdout + done.stderr
            nc = await nats.connect(server.url)
            try:
                js = nc.jetstream()
                orders = await stream_messages(js, "order.submit.>", await stored_count(js, "ORDERS", "order.submit.>"))
                changes = await stream_messages(js, "position.changed.>",
                                                await stored_count(js, "POSITIONS", "position.changed.>"))
            finally:
                await nc.close()
        assert orders and changes, f"sma 5/20 over {BARS} real minutes trades"
        yield Traced(collector.spans, orders, changes)  # the services sent the last as they stopped
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        collector.shutdown()
        collector.server_close()
        await admin.close()


def hops(traced: Traced, msg: Msg) -> list[Span]:
    """The span that published `msg` and its ancestors, from the first (no parent) on; one trace."""
    version, trace_id, span_id, flags = msg.headers["traceparent"].split("-")
    assert version == "00" and int(flags, 16) & 1, msg.headers  # W3C, sampled
    found, at = [], span_id
    while at is not None:
        assert at in traced.spans, f"span {at} of the trace of {msg.subject} was not exported"
        found.append(traced.spans[at])
        at = traced.spans[at].parent_id
    assert {span.trace_id for span in found} == {trace_id}, "one trace throughout"
    return found[::-1]


def services(spans: list[Span]) -> list[str]:
    """The services the spans pass, in order, each once."""
    return list(dict.fromkeys(span.service for span in spans))


def test_an_order_traces_back_through_execution_risk_and_signal_to_its_market_event(traced: Traced) -> None:
    for msg in traced.orders:
        assert services(hops(traced, msg)) == ["ingest", "signal", "risk", "execution"], msg.subject


def test_a_position_change_traces_back_through_portfolio_and_execution_to_a_market_event(traced: Traced) -> None:
    for msg in traced.changes:
        path = services(hops(traced, msg))
        assert path[0] == "ingest" and path[-2:] == ["execution", "portfolio"], path


def test_a_position_change_traces_back_to_the_signal_of_its_order(traced: Traced) -> None:
    for msg in traced.changes:
        assert services(hops(traced, msg)) == ["ingest", "signal", "risk", "execution", "portfolio"]
