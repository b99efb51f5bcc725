"""Best bid/ask (Binance `bookTicker`) from the capture files, as Quote events.

Futures bookTicker rows carry the exchange's transaction time (`T`), which is the clock trades
are stamped in, and that is their time here. Spot bookTicker messages carry no time at all, only
the recorder's receive time `local_ts_ns`, whose clock is not the exchange's (about 1.27 s
behind in the 2024 captures). Their time is the receive time moved to the exchange's clock by
the recorder's offset, taken from the capture's own trades file (beside it, `trades` for
`bookticker` in the name) as the largest `event_time - local_ts_ns` of its trades: the fastest
delivery seen, so a quote is never stamped before it could have been received."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from decimal import Decimal
from pathlib import Path

from proto.events import Quote
from services.ingest.files import DataError, Field, _check_order, _symbol_from_name, _Table

_NONE = object()


def _ms_or_none(text: str) -> object:
    return int(text) if text else _NONE


QUOTE_FIELDS: Sequence[Field] = (("update_id", int), ("bid", Decimal), ("bid_qty", Decimal), ("ask", Decimal),
                                 ("ask_qty", Decimal), ("exchange_ms", _ms_or_none), ("local_ns", int))
QUOTE_NAMES = {"update_id": ("update_id",), "bid": ("bid_price",), "bid_qty": ("bid_qty",), "ask": ("ask_price",),
               "ask_qty": ("ask_qty",), "exchange_ms": ("transaction_time_ms",), "local_ns": ("local_ts_ns",)}
OFFSET_FIELDS: Sequence[Field] = (("event_ms", int), ("local_ns", int))
OFFSET_NAMES = {"event_ms": ("event_time_ms",), "local_ns": ("local_ts_ns",)}


def is_book_ticker(header: Sequence[str]) -> bool:
    return "bid_price" in header and "ask_price" in header


def read_book_ticker(path: str | Path, *, venue: str = "binance", symbol: str | None = None,
                     clock_offset_ns: int | None = None) -> Iterator[Quote]:
    """Quotes from a capture's `*_bookticker_*.csv(.gz)`, in time order. `clock_offset_ns` moves
    receive times to the exchange's clock where rows have no exchange time; by default it is
    measured on the capture's trades file (see the module's doc)."""
    path = Path(path)
    symbol = _symbol_from_name(path, symbol)
    table = _Table(path, QUOTE_FIELDS, QUOTE_NAMES, {}, "a Binance bookTicker capture CSV")
    return _quotes(table, venue, symbol, clock_offset_ns)


def recorder_offset_ns(trades_path: Path) -> int:
    """The recorder's clock offset from the exchange's: max(event_time - local_ts_ns) over the trades."""
    table = _Table(trades_path, OFFSET_FIELDS, OFFSET_NAMES, {}, "a Binance trades capture CSV with local_ts_ns")
    best: int | None = None
    for _, (event_ms, local_ns) in table.columns_by_block():
        if event_ms:
            block = max(e * 1_000_000 - n for e, n in zip(event_ms, local_ns))
            best = block if best is None else max(best, block)
    if best is None:
        raise DataError(trades_path, None, "no trades to measure the recorder's clock offset on")
    return best


def _sibling_trades(path: Path) -> Path:
    sibling = path.with_name(path.name.replace("bookticker", "trades"))
    if sibling == path or not sibling.exists():
        raise DataError(path, None, f"spot bookTicker rows carry no exchange time, and the capture's trades file "
                                    f"{sibling.name} is not beside it to measure the recorder's clock on: put it "
                                    f"there or pass clock_offset_ns")
    return sibling


def _quotes(table: _Table, venue: str, symbol: str, offset: int | None) -> Iterator[Quote]:
    prefix = f"{venue}.{symbol}.q"
    previous: int | None = None
    for line, (ids, bids, bid_qtys, asks, ask_qtys, exchange_ms, local_ns) in table.columns_by_block():
        if not ids:
            continue
        if exchange_ms[0] is _NONE:
            if offset is None:
                offset = recorder_offset_ns(_sibling_trades(table.path))
            times = [n + offset for n in local_ns]
        else:
            try:
                times = [ms * 1_000_000 for ms in exchange_ms]  # type: ignore[operator]
            except TypeError:
                raise DataError(table.path, line, "transaction_time_ms is empty on some rows and not on others") from None
        _check_order(table.path, line, times, previous, False, "quote time")
        previous = times[-1]
        for u, ts, b, bq, a, aq in zip(ids, times, bids, bid_qtys, asks, ask_qtys):
            yield Quote(id=f"{prefix}{u}", ts_event=ts, venue=venue, symbol=symbol, bid=b, bid_qty=bq, ask=a,
                        ask_qty=aq)
