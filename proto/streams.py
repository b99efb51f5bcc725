"""The JetStream streams and KV buckets, declared once. Provisioning (bosun.runtime)
creates what is missing, leaves what matches, and refuses what conflicts."""

from __future__ import annotations

import msgspec

from proto import subjects as sj

GiB = 1 << 30
MiB = 1 << 20
DAY_S = 86_400


class StreamSpec(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    subjects: tuple[str, ...]
    max_age_s: int
    max_bytes: int
    max_msgs: int = -1
    max_msg_size: int = MiB
    duplicate_window_s: int = 120
    storage: str = "file"
    discard: str = "old"
    sources: tuple[str, ...] = ()  # streams the server copies into this one


class BucketSpec(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    history: int
    max_bytes: int
    max_value_size: int = 64 * 1024


STREAMS: tuple[StreamSpec, ...] = (
    StreamSpec(name="MARKET", subjects=("md.>",), max_age_s=2 * DAY_S, max_bytes=2 * GiB),
    StreamSpec(name="SIGNALS", subjects=("signal.>",), max_age_s=30 * DAY_S, max_bytes=GiB),
    StreamSpec(name="TARGETS", subjects=("target.>",), max_age_s=30 * DAY_S, max_bytes=GiB),
    StreamSpec(name="RISK", subjects=("risk.>", sj.TRADING_STATE), max_age_s=90 * DAY_S, max_bytes=GiB),
    # Execution and risk rebuild positions from this log: nothing may age out of it silently,
    # so it keeps everything and, when full, refuses new orders loudly instead of forgetting.
    StreamSpec(name="ORDERS", subjects=("order.>",), max_age_s=0, max_bytes=16 * GiB, discard="new"),
    # Risk and signal rebuild positions from each subject's newest message here: like ORDERS, nothing
    # ages out, and when full it refuses loudly (sized so that ORDERS, >= 3 events per fill, fills first).
    StreamSpec(name="POSITIONS", subjects=("position.>",), max_age_s=0, max_bytes=4 * GiB, discard="new"),
    # The ledger's reports (funding paid, equity snapshots): PostgreSQL keeps them; this is their feed.
    StreamSpec(name="LEDGER", subjects=("ledger.>",), max_age_s=30 * DAY_S, max_bytes=GiB),
    StreamSpec(name="DLQ", subjects=("dlq.>",), max_age_s=30 * DAY_S, max_bytes=GiB),
    # Every decision (targets, approvals, breaches, trading flips, order events), copied by the
    # server into one stream kept for a year: no service spends a publish on it.
    StreamSpec(name="AUDIT", subjects=(), sources=("TARGETS", "RISK", "ORDERS"), max_age_s=365 * DAY_S,
               max_bytes=4 * GiB),
)

BUCKETS: tuple[BucketSpec, ...] = (
    BucketSpec(name=sj.PRICES_BUCKET, history=1, max_bytes=256 * MiB),
    BucketSpec(name=sj.CONTROL_BUCKET, history=16, max_bytes=16 * MiB),
)


def stream_for(subject: str) -> StreamSpec | None:
    return next((s for s in STREAMS if any(sj.matches(p, subject) for p in s.subjects)), None)
