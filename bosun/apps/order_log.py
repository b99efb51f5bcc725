"""One client's decisions as the streams keep them: its approved targets (TARGETS) and its order
commands and events (ORDERS), read once to the end into an OrderJournal for `bosun report`; and
the bars of its markets (MARKET), which its equity is marked at.

Read from the origin streams, not AUDIT: a report right after a run sees every order its
fills came from (AUDIT's copy may still lag). ORDERS keeps everything; TARGETS keeps 30 days,
so older orders report their strategy as unknown and no slippage (no decision price)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from operator import attrgetter
from typing import Any

import msgspec
from nats.js import api
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError

from proto import codec
from proto import subjects as sj
from proto.events import Bar
from services.portfolio.execution_quality import OrderJournal

BATCH = 1000  # messages per fetch
FETCH_TIMEOUT_S = 10.0


async def client_journal(js: JetStreamContext, client: str) -> tuple[OrderJournal, int]:
    """The journal, and how many stored messages could not be decoded (skipped: consumers
    dead-lettered them too)."""
    journal = OrderJournal()
    unreadable = 0
    # Targets first: an order finds its target's strategy and decision price when it is fed.
    for stream, subject in (("TARGETS", f"target.approved.{client}.>"), ("ORDERS", f"order.*.{client}.>")):
        unreadable += await _read(js, stream, subject, journal.on_event)
    return journal, unreadable


async def market_bars(js: JetStreamContext, markets: Iterable[tuple[str, str]]) -> tuple[list[Bar], int]:
    """The bars MARKET holds of each (venue, symbol), in time order, and how many stored messages
    could not be decoded (skipped)."""
    bars: list[Bar] = []
    unreadable = 0
    for venue, symbol in sorted(set(markets)):
        unreadable += await _read(js, "MARKET", f"{sj.BARS[:-1]}{venue}.{symbol}", bars.append)
    return sorted(bars, key=attrgetter("ts_event")), unreadable


async def _read(js: JetStreamContext, stream: str, subject: str, on_event: Callable[[Any], None]) -> int:
    """Every message stored on `subject` when the read starts, in order, to `on_event`."""
    try:
        sub = await js.pull_subscribe(subject, stream=stream, config=api.ConsumerConfig(
            ack_policy=api.AckPolicy.NONE, inactive_threshold=30.0))
    except NotFoundError:  # the stream was never created: nothing was decided
        return 0
    unreadable = 0
    try:
        pending = (await sub.consumer_info()).num_pending
        while pending > 0:
            for msg in await sub.fetch(min(BATCH, pending), timeout=FETCH_TIMEOUT_S):
                pending -= 1
                try:
                    on_event(codec.decode_any(msg.data))
                except (msgspec.DecodeError, ValueError):
                    unreadable += 1
    finally:
        await sub.unsubscribe()
    return unreadable
