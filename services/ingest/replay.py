"""Replaying recorded market data: several files merged in event-time order, paced at a
multiple of real time (paper trading) or as fast as the consumer takes them."""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from operator import attrgetter

from proto.events import Bar, Quote, Trade

YIELD_EVERY = 1000  # at full speed, let the event loop run other tasks this often

MarketEvent = Bar | Trade | Quote


def merge_by_time(iterables: Iterable[Iterable[MarketEvent]]) -> Iterator[MarketEvent]:
    """One stream in `ts_event` order from streams that are each in that order; ties keep
    the order of the inputs."""
    return heapq.merge(*iterables, key=attrgetter("ts_event"))


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
