"""Time bars from trades, interval names, and the id scheme every ingest path shares.

Ids are built from a prefix once per stream and the time or trade id per event, so a
bar read from a file, built from trades or received on the websocket has the same id."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from proto.events import Bar, Trade

UNIT_NS = {"d": 86_400_000_000_000, "h": 3_600_000_000_000, "m": 60_000_000_000, "s": 1_000_000_000}
_INTERVAL = re.compile(r"^([1-9][0-9]*)([smhd])$")


def parse_interval(interval: str) -> int:
    """"1m" -> 60_000_000_000: a count and a unit among s, m, h, d, in nanoseconds."""
    match = _INTERVAL.match(interval)
    if match is None:
        raise ValueError(f"interval {interval!r} is not a count and a unit among s, m, h, d (e.g. '1m', '4h')")
    return int(match[1]) * UNIT_NS[match[2]]


def format_interval(ns: int) -> str:
    """The inverse of parse_interval, in the largest unit that divides `ns` exactly."""
    if ns <= 0:
        raise ValueError(f"an interval must be positive, got {ns} ns")
    for unit, size in UNIT_NS.items():
        if ns % size == 0:
            return f"{ns // size}{unit}"
    raise ValueError(f"{ns} ns is not a whole number of seconds")


def bar_id_prefix(venue: str, symbol: str, interval: str) -> str:
    """A bar's id is this prefix followed by its open time in ns."""
    return f"{venue}.{symbol}.{interval}."


def trade_id_prefix(venue: str, symbol: str) -> str:
    """A trade's id is this prefix followed by the venue's trade id."""
    return f"{venue}.{symbol}."


def bars_from_trades(trades: Iterable[Trade], interval: str = "1m") -> Iterator[Bar]:
    """OHLCV bars aligned to `interval` from the time-ordered trades of one venue.symbol.

    Only intervals that had trades give a bar; a bar is emitted when a trade of a later
    interval arrives, and the last one when the trades end."""
    step = parse_interval(interval)
    it = iter(trades)
    first = next(it, None)
    if first is None:
        return
    venue, symbol = first.venue, first.symbol
    prefix = bar_id_prefix(venue, symbol, interval)
    start = first.ts_event - first.ts_event % step
    end = start + step
    o = h = l = c = first.price
    v = first.qty
    for t in it:
        ts, p = t.ts_event, t.price
        if t.symbol != symbol or t.venue != venue:
            raise ValueError(f"bars_from_trades got {t.venue}.{t.symbol} trade {t.id} among {venue}.{symbol} "
                             f"trades: build bars per symbol")
        if ts >= end:
            yield Bar(id=f"{prefix}{start}", ts_event=end, venue=venue, symbol=symbol, interval=interval,
                      ts_open=start, open=o, high=h, low=l, close=c, volume=v)
            start = ts - ts % step
            end = start + step
            o = h = l = c = p
            v = t.qty
            continue
        if ts < start:
            raise ValueError(f"trade {t.id} at {ts} ns is before the bar it would join, which opens at {start} ns: "
                             f"trades must be in time order")
        if p > h:
            h = p
        elif p < l:
            l = p
        c = p
        v += t.qty
    yield Bar(id=f"{prefix}{start}", ts_event=end, venue=venue, symbol=symbol, interval=interval,
              ts_open=start, open=o, high=h, low=l, close=c, volume=v)


def trades_and_bars(trades: Iterator[Trade], interval: str) -> Iterator[Bar | Trade]:
    """The trades, each bar of `interval` built from them right after its last trade."""
    held: list[Trade] = []

    def tap() -> Iterator[Trade]:
        for trade in trades:
            held.append(trade)
            yield trade

    for bar in bars_from_trades(tap(), interval):
        # A bar is made when the first trade after it comes (held last), or when the trades end.
        closing = held[-1] if held and held[-1].ts_event >= bar.ts_event else None
        yield from held[:-1] if closing is not None else held
        yield bar
        held[:] = [closing] if closing is not None else []
