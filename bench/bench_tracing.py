"""The CPU a traced message costs a service, however busy the machine: the binding's spans for
N messages handled one per round, --rate a second (as at 1,000 bars/s), each publishing one output, exported
over OTLP/HTTP as a service exports them (OTEL_TRACES_EXPORTER=otlp, the BatchSpanProcessor and
the OTLP exporter on its thread) to a collector stand-in in a process of its own
(bench/ops_sidecar.py). CPU time, not wall-clock: the handler thread's before the publish (the
span's traceparent) and after it (the span handed to the SDK), and the exporter thread's.

    python bench/bench_tracing.py [--messages 20000] [--rate 2000]"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bosun.runtime import telemetry  # noqa: E402
from bosun.runtime.embedded import free_port  # noqa: E402
from opentelemetry import trace  # noqa: E402
from opentelemetry.trace import SpanKind  # noqa: E402

UPSTREAM = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=2000.0, help="messages a second: the export keeps up")
    args = parser.parse_args()
    port = free_port()
    sidecar = subprocess.Popen([sys.executable, str(Path(__file__).with_name("ops_sidecar.py")), str(port)],
                               stdout=subprocess.PIPE, text=True)
    try:
        assert sidecar.stdout.readline().strip() == "READY"
        os.environ |= {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
                       "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}
        telemetry.setup_tracing("bench", "otlp")
        orders = telemetry.OrderContexts()
        headers = {"Nats-Msg-Id": "TargetPosition:x", "traceparent": UPSTREAM}
        before = after = 0
        cpu0, start = time.process_time(), time.monotonic()
        for n in range(args.messages):
            if n % 100 == 0:  # paced, as messages come: the processor's queue is bounded
                time.sleep(max(0.0, start + n / args.rate - time.monotonic()))
            output = object()
            t0 = time.thread_time_ns()
            spans = telemetry.RoundSpans(orders)
            spans.handled("risk target.proposed.>", SpanKind.CONSUMER, time.time_ns(), [output], headers)
            assert spans.parents[id(output)]
            t1 = time.thread_time_ns()
            spans.end()
            after += time.thread_time_ns() - t1
            before += t1 - t0
        trace.get_tracer_provider().force_flush()
        total = time.process_time() - cpu0
    finally:
        sidecar.terminate()
        counts = sidecar.communicate(timeout=30)[0].strip().splitlines()[-1]
    us = 1e6 / max(args.messages, 1)  # seconds in all -> us per message
    before_us, after_us = before / 1e9 * us, after / 1e9 * us
    print(f"tracing CPU per message handled (one span each), {args.messages:,} messages at {args.rate:,.0f}/s: "
          f"{total * us:.1f} us in all: the handler's thread {before_us:.1f} us before the publish, {after_us:.1f} us "
          f"after it; the exporter's thread (and the rest) {total * us - before_us - after_us:.1f} us; "
          f"collector {counts}")
    print(f"reproduce: python bench/bench_tracing.py --messages {args.messages} --rate {args.rate:g}")


if __name__ == "__main__":
    main()
