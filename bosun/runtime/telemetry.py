"""Structured logs (one JSON object per line on stderr) and the Prometheus metrics every
service exports. Labels stay low-cardinality: the service and the input filter, never a
full subject."""

from __future__ import annotations

import logging
import sys
import time

import msgspec
from prometheus_client import Counter, Histogram

MESSAGES_IN = Counter("bosun_messages_in", "Input messages handled", ["service", "input"])
MESSAGES_OUT = Counter("bosun_messages_out", "Messages published to JetStream", ["service"])
DEAD_LETTERS = Counter("bosun_dead_letters", "Inputs sent to the dead-letter subject", ["service"])
HANDLER_SECONDS = Histogram(
    "bosun_handler_seconds", "One input from arrival to ack: decode, handler, sink, publish",
    ["service", "input"],
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0))

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
