"""What the platform already has, per venue.symbol: the newest bar and the newest trade stored
in MARKET. Market data at or before them is old (a restarted replay, a websocket's overlap
after a reconnect, a REST gap fill that reaches into what was stored) and is not published
again, so MARKET never holds a bar twice and KV `prices` never steps back in time."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import NamedTuple

from proto.events import Bar, FundingRateSettled, PriceSnapshot, Quote, Trade

Key = tuple[str, str]  # (venue, symbol)


class Stored(NamedTuple):
    """What the platform held when ingest started: the last bar and trade stored in MARKET and
    the price in KV `prices`, per venue.symbol."""

    bars: Mapping[Key, Bar] = {}
    trades: Mapping[Key, Trade] = {}
    same_time_trades: Mapping[Key, frozenset[str]] = {}  # the ids of every stored trade at the last one's time
    prices: Mapping[Key, PriceSnapshot] = {}


class Mark:
    """The newest event time of one stream of a venue.symbol and the ids already seen at that
    time: two trades in one millisecond are two trades, the same one twice is one. Mutated in
    place, and the set made only for a second id at one time: this runs for every event."""

    __slots__ = ("ts", "last", "more")

    def __init__(self, ts: int, last: str, more: set[str] | None = None) -> None:
        self.ts = ts
        self.last = last
        self.more = more  # the other ids at `ts`: bounded by one timestamp's events

    def __repr__(self) -> str:
        return f"Mark({self.ts}, {self.last!r}, {self.more!r})"


class Newest:
    """The newest bar, trade and quote per venue.symbol; `admit` says whether an event is new
    and, if so, makes it the newest. (Quotes are not looked up in MARKET at start: a restart may
    repeat the quotes of its last moments, which readers take as the newest state again.)"""

    def __init__(self, stored: Stored = Stored()) -> None:
        self.bars = {key: Mark(bar.ts_event, bar.id) for key, bar in stored.bars.items()}
        self.trades = {key: Mark(trade.ts_event, trade.id, set(stored.same_time_trades.get(key, ())) or None)
                       for key, trade in stored.trades.items()}
        self.quotes: dict[Key, Mark] = {}
        self._marks = {Bar: self.bars, Trade: self.trades, Quote: self.quotes}

    def admit(self, event: Bar | Trade | Quote) -> bool:
        marks = self._marks[type(event)]
        key = (event.venue, event.symbol)
        mark = marks.get(key)
        ts = event.ts_event
        if mark is None:
            marks[key] = Mark(ts, event.id)
            return True
        if ts > mark.ts:
            mark.ts, mark.last, mark.more = ts, event.id, None
            return True
        if ts < mark.ts or event.id == mark.last:
            return False
        if mark.more is None:
            mark.more = {event.id}
            return True
        if event.id in mark.more:
            return False
        mark.more.add(event.id)
        return True

    def after(self, events: Iterable[Bar | Trade | Quote | FundingRateSettled]
              ) -> Iterator[Bar | Trade | Quote | FundingRateSettled]:
        """The events that are new, in order, with this as the state (a replay skips the old part
        before it is paced: a restart does not wait through what was already published). Funding
        passes: the portfolio books each funding time of a market once, whoever publishes it again."""
        return (event for event in events if type(event) is FundingRateSettled or self.admit(event))
