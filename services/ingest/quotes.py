"""Best bid/ask (Binance `bookTicker`) from the capture files, as Quote events.

Futures bookTicker rows carry the exchange's transaction time (`T`), which is the clock trades
are stamped in, and that is their time here. Spot bookTicker messages carry no time at all, only
the recorder's receive time `local_ts_ns`, whose clock is not the exchange's (about 1.27 s
behind in the 2024 captures). Their time is the receive time moved to the exchange's clock by
the recorder's offset, taken from the capture's own trades file (beside it, `trades` for
`bookticker` in the name) as the largest `event_time - local_ts_ns` of its trades: the fastest
delivery seen, so a quote is never stamped before it could have been received."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal
from itertools import repeat
from math import isfinite
from operator import mul, sub
from pathlib import Path

from proto.events import Quote
from services.ingest.files import DataError, Field, _check_order, _symbol_from_name, _Table

# Ids, prices and sizes are kept as text, checked block by block (ids: digits; numbers: finite, as
# float takes what Decimal takes, in C and faster) and made Decimals only for the quotes made:
# most quotes of a backtest never are. The exchange time is empty in spot captures.
QUOTE_FIELDS: Sequence[Field] = (("update_id", str), ("bid", str), ("bid_qty", str), ("ask", str), ("ask_qty", str),
                                 ("exchange_ms", str), ("local_ns", int))
NUMBERS = ("bid_price", "bid_qty", "ask_price", "ask_qty")
QUOTE_NAMES = {"update_id": ("update_id",), "bid": ("bid_price",), "bid_qty": ("bid_qty",), "ask": ("ask_price",),
               "ask_qty": ("ask_qty",), "exchange_ms": ("transaction_time_ms",), "local_ns": ("local_ts_ns",)}
OFFSET_FIELDS: Sequence[Field] = (("event_ms", int), ("local_ns", int))
OFFSET_NAMES = {"event_ms": ("event_time_ms",), "local_ns": ("local_ts_ns",)}


def is_book_ticker(header: Sequence[str]) -> bool:
    return "bid_price" in header and "ask_price" in header


class QuoteBlock:
    """The quotes of one block of a bookTicker file, read and checked: their times, and each one as
    a Quote only when asked for it (a backtest looks at few of its quotes one by one)."""

    __slots__ = ("times", "_prefix", "_venue", "_symbol", "_ids", "_bids", "_bid_qtys", "_asks", "_ask_qtys")

    def __init__(self, prefix: str, venue: str, symbol: str, times: list[int], ids: list[str], bids: list[str],
                 bid_qtys: list[str], asks: list[str], ask_qtys: list[str]) -> None:
        self.times = times
        self._prefix, self._venue, self._symbol = prefix, venue, symbol
        self._ids, self._bids, self._bid_qtys, self._asks, self._ask_qtys = ids, bids, bid_qtys, asks, ask_qtys

    def quote(self, i: int) -> Quote:
        return Quote(id=f"{self._prefix}{self._ids[i]}", ts_event=self.times[i], venue=self._venue, symbol=self._symbol,
                     bid=Decimal(self._bids[i]), bid_qty=Decimal(self._bid_qtys[i]), ask=Decimal(self._asks[i]),
                     ask_qty=Decimal(self._ask_qtys[i]))


def read_book_ticker(path: str | Path, *, venue: str = "binance", symbol: str | None = None,
                     clock_offset_ns: int | None = None) -> Iterator[Quote]:
    """Quotes from a capture's `*_bookticker_*.csv(.gz)`, in time order. `clock_offset_ns` moves
    receive times to the exchange's clock where rows have no exchange time; by default it is
    measured on the capture's trades file (see the module's doc)."""
    return _each_quote(read_book_ticker_blocks(path, venue=venue, symbol=symbol, clock_offset_ns=clock_offset_ns))


def _each_quote(blocks: Iterator[QuoteBlock]) -> Iterator[Quote]:
    for block in blocks:
        quote = block.quote
        for i in range(len(block.times)):
            yield quote(i)


def read_book_ticker_blocks(path: str | Path, *, venue: str = "binance", symbol: str | None = None,
                            clock_offset_ns: int | None = None) -> Iterator[QuoteBlock]:
    """`read_book_ticker`'s quotes block by block, each quote made only when asked for."""
    path = Path(path)
    symbol = _symbol_from_name(path, symbol)
    table = _Table(path, QUOTE_FIELDS, QUOTE_NAMES, {}, "a Binance bookTicker capture CSV")
    return _quote_blocks(table, venue, symbol, clock_offset_ns)


def recorder_offset_ns(trades_path: Path) -> int:
    """The recorder's clock offset from the exchange's: max(event_time - local_ts_ns) over the trades."""
    table = _Table(trades_path, OFFSET_FIELDS, OFFSET_NAMES, {}, "a Binance trades capture CSV with local_ts_ns")
    best: int | None = None
    for _, (event_ms, local_ns) in table.columns_by_block():
        if event_ms:
            block = max(map(sub, map(mul, event_ms, repeat(1_000_000)), local_ns))  # in C: a trades file's every row
            best = block if best is None else max(best, block)
    if best is None:
        raise DataError(trades_path, None, "no trades to measure the recorder's clock offset on")
    return best


def _check_digits(path: Path, line: int, ids: list[str]) -> None:
    """Each update id a run of ASCII digits, or an error naming the first that is not."""
    joined = "".join(ids)
    if all(ids) and joined.isascii() and joined.isdigit():
        return
    n, bad = next((n, i) for n, i in enumerate(ids, line) if not (i and i.isascii() and i.isdigit()))
    raise DataError(path, n, f"update_id {bad!r} is not an integer")


def _check_numbers(path: Path, line: int, columns: Iterable[tuple[str, list[str]]]) -> None:
    """Each value a finite number, or an error naming the first that is not."""
    for name, values in columns:
        try:
            if all(map(isfinite, map(float, values))):
                continue
        except ValueError:
            pass
        for n, value in enumerate(values, line):
            try:
                number = isfinite(float(value))
            except ValueError:
                number = False
            if not number:
                raise DataError(path, n, f"{name} {value!r} is not a number")


def _sibling_trades(path: Path) -> Path:
    sibling = path.with_name(path.name.replace("bookticker", "trades"))
    if sibling == path or not sibling.exists():
        raise DataError(path, None, f"spot bookTicker rows carry no exchange time, and the capture's trades file "
                                    f"{sibling.name} is not beside it to measure the recorder's clock on: put it "
                                    f"there or pass clock_offset_ns")
    return sibling


def _quote_blocks(table: _Table, venue: str, symbol: str, offset: int | None) -> Iterator[QuoteBlock]:
    prefix = f"{venue}.{symbol}.q"
    previous: int | None = None
    for line, (ids, bids, bid_qtys, asks, ask_qtys, exchange_ms, local_ns) in table.columns_by_block():
        if not ids:
            continue
        _check_digits(table.path, line, ids)
        _check_numbers(table.path, line, zip(NUMBERS, (bids, bid_qtys, asks, ask_qtys)))
        if not exchange_ms[0]:
            if offset is None:
                offset = recorder_offset_ns(_sibling_trades(table.path))
            times = [n + offset for n in local_ns]
        else:
            try:
                times = [int(ms) * 1_000_000 for ms in exchange_ms]
            except ValueError:
                n, ms = next((n, ms) for n, ms in enumerate(exchange_ms, line) if not ms.isdigit())
                raise DataError(table.path, n, f"transaction_time_ms {ms!r} is not an integer (empty on some rows "
                                               f"and not on others?)") from None
        _check_order(table.path, line, times, previous, False, "quote time")
        previous = times[-1]
        yield QuoteBlock(prefix, venue, symbol, times, ids, bids, bid_qtys, asks, ask_qtys)
