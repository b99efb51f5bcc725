"""Recorded market data: several files merged in event-time order, as a backtest reads them and
paper mode replays them (paced by services.ingest.pacing). Synchronous: a backtest loads no event loop."""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Sequence
from itertools import chain
from operator import attrgetter
from pathlib import Path

from proto.events import Bar, Quote, Trade
from services.ingest.bars import trades_and_bars
from services.ingest.files import read_market_file

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
