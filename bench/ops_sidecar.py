"""What runs beside the platform in production, in a process of its own for the tracing-cost
benchmark: an OpenTelemetry collector stand-in (accepts OTLP/HTTP on /v1/traces, answers 200,
counts requests and bytes) and a Prometheus stand-in (GETs each metrics URL every second).

    python bench/ops_sidecar.py OTLP_PORT METRICS_URL...

Prints READY once listening; on SIGTERM prints its counts as one JSON line and exits."""

from __future__ import annotations

import json
import signal
import sys
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SCRAPE_EVERY_S = 1.0
SCRAPE_TIMEOUT_S = 2.0
counts = {"otlp_requests": 0, "otlp_bytes": 0, "scrapes": 0, "scrape_errors": 0}
lock = threading.Lock()


class Collector(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        size = int(self.headers.get("Content-Length", 0))
        self.rfile.read(size)
        with lock:
            counts["otlp_requests"] += 1
            counts["otlp_bytes"] += size
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


def scrape(urls: list[str], stop: threading.Event) -> None:
    while not stop.wait(SCRAPE_EVERY_S):
        for url in urls:
            try:
                with urllib.request.urlopen(url, timeout=SCRAPE_TIMEOUT_S) as r:
                    r.read()
                key = "scrapes"
            except OSError:
                key = "scrape_errors"
            with lock:
                counts[key] += 1


def main() -> None:
    port, urls = int(sys.argv[1]), sys.argv[2:]
    server = ThreadingHTTPServer(("127.0.0.1", port), Collector)
    stop = threading.Event()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    threading.Thread(target=scrape, args=(urls, stop), daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("READY", flush=True)
    stop.wait()
    server.shutdown()
    with lock:
        print(json.dumps(counts), flush=True)


if __name__ == "__main__":
    main()
