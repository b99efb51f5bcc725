"""Replaying recorded market data: several files merged in event-time order, paced at a
multiple of real time (paper trading) or as fast as the consumer takes them."""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from itertools import chain
from operator import attrgetter
from pathlib import Path

from proto.events import Bar, Quote, Trade
from services.ingest.bars import trades_and_bars
from services.ingest.files import read_market_file

YIELD_EVERY = 1000  # at full speed, let the event loop run other tasks this often

MarketEvent = Bar | Trade | Quote


def recorded(paths: Sequence[str | Path], interval: str, venue: str = "binance") -> Iterator[MarketEvent]:
    """The events of recorded files in time order, a trade file's with the bars of `interval` built
    from its trades (each right after its last trade), as paper mode replays them and a backtest on
    ticks reads them; at one time, trade files' events come first, then the others' in file order.
    The files are opened now, so a missing or malformed one fails here."""
    trades: list[Iterator[MarketEvent]] = []
    others: list[Iterator[MarketEvent]] = []
    for path in paths:
        rows = read_market_file(path, venue=venue)
        first = next(rows, None)  # type: ignore[call-overload]
        if first is None:
            continue
        rows = chain([first], rows)  # type: ignore[assignment]
        if type(first) is Trade:
            trades.append(trades_and_bars(rows, interval))  # type: ignore[arg-type]
        else:
            others.append(rows)  # type: ignore[arg-type]
    streams = [*trades, *others]
    return streams[0] if len(streams) == 1 else merge_by_time(streams)


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
