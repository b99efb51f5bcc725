"""The simulator's market: each data file's symbol with its trading rules, and one time-ordered
replay of the real trades of all files (a kline file is replayed as four trades a bar)."""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from itertools import chain, islice
from pathlib import Path

from proto.events import Bar, Trade
from services.ingest.files import read_market_file

# Quote assets by how Binance spells them, longest first so that e.g. FDUSD wins over USD.
QUOTES = ("FDUSD", "USDT", "USDC", "BUSD", "TUSD", "EUR", "TRY", "BTC", "ETH", "BNB")
# Binance's minimum order value per quote asset (about 5 USD), for the NOTIONAL filter.
MIN_NOTIONAL = {"BTC": Decimal("0.0001"), "ETH": Decimal("0.001"), "BNB": Decimal("0.01")}
STABLE_MIN_NOTIONAL = Decimal(5)
RULES_SAMPLE = 20_000  # trades read ahead to learn a file's tick and step sizes
NS_PER_MS = 1_000_000


@dataclass(frozen=True, slots=True)
class Tick:
    """One replayed trade: what the matching engine sees."""

    time_ms: int
    symbol: str
    price: Decimal
    qty: Decimal


@dataclass(frozen=True, slots=True)
class SymbolRules:
    """A symbol's filters, as exchangeInfo reports them and orders are checked against."""

    symbol: str
    base: str
    quote: str
    tick_size: Decimal
    step_size: Decimal
    min_qty: Decimal
    max_qty: Decimal
    min_price: Decimal
    max_price: Decimal
    min_notional: Decimal


def split_symbol(symbol: str) -> tuple[str, str]:
    for quote in QUOTES:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)], quote
    raise ValueError(f"cannot tell the quote asset of {symbol!r}: it ends in none of {', '.join(QUOTES)}")


def _places(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def learn_rules(symbol: str, sample: Iterable[Tick]) -> SymbolRules:
    """Tick and step sizes are the finest decimals the real trades used: an order the data could
    have made passes the filters."""
    ticks = list(sample)
    if not ticks:
        raise ValueError(f"no trades for {symbol}: the data file is empty")
    price_places = max(_places(t.price) for t in ticks)
    qty_places = max(_places(t.qty) for t in ticks)
    tick, step = Decimal(1).scaleb(-price_places), Decimal(1).scaleb(-qty_places)
    base, quote = split_symbol(symbol)
    return SymbolRules(symbol=symbol, base=base, quote=quote, tick_size=tick, step_size=step, min_qty=step,
                       max_qty=Decimal(9_000_000), min_price=tick, max_price=Decimal(10_000_000),
                       min_notional=MIN_NOTIONAL.get(quote, STABLE_MIN_NOTIONAL))


def _ticks(events: Iterator[Bar] | Iterator[Trade]) -> Iterator[Tick]:
    for event in events:
        if isinstance(event, Trade):
            yield Tick(event.ts_event // NS_PER_MS, event.symbol, event.price, event.qty)
        else:  # a bar's path: open, then the extreme nearer the open, the other one, the close
            # A quarter of the volume each, in the volume's own decimals (the step the data shows).
            t = event.ts_open // NS_PER_MS
            quarter = (event.volume / 4).quantize(Decimal(1).scaleb(-_places(event.volume)), ROUND_DOWN)
            up = event.close >= event.open
            for i, price in enumerate((event.open, event.low if up else event.high,
                                       event.high if up else event.low, event.close)):
                yield Tick(t + i, event.symbol, price, quarter)


class Replay:
    """The trades of all files merged by time; `rules` has each file's symbol."""

    def __init__(self, paths: Iterable[Path]) -> None:
        streams, self.rules = [], {}
        for path in paths:
            ticks = _ticks(read_market_file(path))
            head = list(islice(ticks, RULES_SAMPLE))
            if not head:
                raise ValueError(f"{path}: no trades or bars in the file")
            symbol = head[0].symbol
            if symbol in self.rules:
                raise ValueError(f"{path}: a second data file for {symbol}")
            self.rules[symbol] = learn_rules(symbol, head)
            streams.append(chain(head, ticks))
        if not streams:
            raise ValueError("no data file given: the simulator replays at least one")
        self._merged = heapq.merge(*streams, key=lambda tick: tick.time_ms)
        self._next = next(self._merged, None)
        self.replayed = 0

    def peek(self) -> Tick | None:
        """The next trade, not yet replayed; None at the end of the data."""
        return self._next

    def pop(self) -> Tick | None:
        tick, self._next = self._next, next(self._merged, None)
        if tick is not None:
            self.replayed += 1
        return tick
