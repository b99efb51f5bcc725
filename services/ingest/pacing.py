"""Recorded market data paced at a multiple of real time (paper trading), or as fast as the
consumer takes them: the async half of a replay (services.ingest.replay reads and merges the files)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable

from services.ingest.replay import MarketEvent

YIELD_EVERY = 1000  # at full speed, let the event loop run other tasks this often


async def replay(events: Iterable[MarketEvent], speed: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> AsyncIterator[MarketEvent]:
    """The events, each yielded once `speed` x real time has passed since the first, by
    event time; speed 0 yields them as fast as they are taken. Either way other tasks get
    to run at least every YIELD_EVERY events. `clock` (seconds) and `sleep` are injectable for tests."""
    if speed < 0:
        raise ValueError(f"replay speed must be >= 0 (0 = as fast as possible), got {speed}")
    start_wall: float | None = None
    start_ts = 0
    for n, event in enumerate(events, 1):
        delay = 0.0
        if speed:
            if start_wall is None:
                start_wall, start_ts = clock(), event.ts_event
            delay = start_wall + (event.ts_event - start_ts) / 1e9 / speed - clock()
        if delay > 0:
            await sleep(delay)
        elif n % YIELD_EVERY == 0:
            await sleep(0)
        yield event
