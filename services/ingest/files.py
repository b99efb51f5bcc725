"""Readers for Binance market-data CSV files (klines, trades and funding rates), gzip or plain.

The backtest reads through here, so parsing is columnar: a block of about 128 kB of text
is split into one flat list of fields, each column is a slice of it, converted with
`map`; the per-row work stays in C. Only when a block holds a bad row is it scanned
again row by row, to name the file, the line and the problem."""

from __future__ import annotations

import gzip
import re
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from itertools import chain, islice
from operator import le, lt
from pathlib import Path

from proto.events import Bar, FundingRateSettled, Quote, Trade
from services.ingest.bars import bar_id_prefix, format_interval, parse_interval, trade_id_prefix
from services.ingest.funding import settled

# Small enough that a block, its fields and their values stay in the CPU cache while the
# columns are converted: 1 MB blocks made reading klines about 10% slower.
CHUNK_BYTES = 1 << 17
MAX_LINE_BYTES = 1 << 16  # a kline or trade line is under 200 bytes
GZIP_MAGIC = b"\x1f\x8b"
_SYMBOL_TOKEN = re.compile(r"^[A-Z][A-Z0-9]{2,}$")
_INTERVAL_TOKEN = re.compile(r"^[1-9][0-9]*[smhd]$")
_TOKEN_SEPARATORS = re.compile(r"[_\-.]")


class DataError(ValueError):
    """A market-data file that cannot be used: `<path>:<line>: <problem>` (no line when the
    problem is the file as a whole, e.g. it cannot be opened)."""

    def __init__(self, path: str | Path, line: int | None, problem: str) -> None:
        self.path = str(path)
        self.line = line
        self.problem = problem
        super().__init__(f"{path}:{line}: {problem}" if line is not None else f"{path}: {problem}")


# ----------------------------------------------------------------------------- conversions


# is_buyer_maker -> the taker's side: when the buyer made the market, the taker sold.
_SIDES = {"true": "sell", "false": "buy", "True": "sell", "False": "buy"}
_side = _SIDES.__getitem__
_EXPECTED = {int: "an integer", Decimal: "a number", _side: "true or false"}

Field = tuple[str, Callable[[str], object]]  # canonical column name, converter
KLINE_FIELDS: Sequence[Field] = (("open_time", int), ("open", Decimal), ("high", Decimal), ("low", Decimal),
                                 ("close", Decimal), ("volume", Decimal))
TRADE_FIELDS: Sequence[Field] = (("id", int), ("price", Decimal), ("qty", Decimal), ("time", int),
                                 ("is_buyer_maker", _side))

# Header names that mean each canonical column.
KLINE_NAMES = {name: (name,) for name, _ in KLINE_FIELDS}
TRADE_NAMES = {"id": ("trade_id", "agg_trade_id", "id"), "price": ("price",), "qty": ("qty", "quantity"),
               "time": ("trade_time_ms", "transact_time", "time"), "is_buyer_maker": ("is_buyer_maker",)}

# Column positions in header-less files, by column count (data.binance.vision layouts).
KLINE_HEADERLESS = {n: {name: i for i, (name, _) in enumerate(KLINE_FIELDS)} for n in (6, 12)}
TRADE_HEADERLESS = {
    8: {"id": 0, "price": 1, "qty": 2, "time": 5, "is_buyer_maker": 6},  # aggTrades
    7: {"id": 0, "price": 1, "qty": 2, "time": 4, "is_buyer_maker": 5},  # trades
}

FUNDING_FIELDS = (("time", int), ("rate", Decimal))
FUNDING_NAMES = {"time": ("funding_time_ms", "fundingTime", "calc_time"),
                 "rate": ("funding_rate", "fundingRate", "last_funding_rate")}
# data.binance.vision's fundingRate CSV without its header: calc_time,funding_interval_hours,last_funding_rate
FUNDING_HEADERLESS = {3: {"time": 0, "rate": 2}}


def _time_scale(first_time: int) -> int:
    """ns per unit of a file's times: Binance writes ms, and µs in spot files since 2025."""
    return 1_000_000 if first_time < 10**14 else 1_000


# ----------------------------------------------------------------------------- reading


def _blocks(path: Path) -> Iterator[str]:
    """The file's text in blocks of about CHUNK_BYTES, each made of whole lines ending in '\\n'."""
    try:
        raw = open(path, "rb")
    except OSError as exc:
        raise DataError(path, None, f"cannot open file: {exc.strerror}") from None
    with raw:
        stream = gzip.GzipFile(fileobj=raw) if raw.read(2) == GZIP_MAGIC else raw
        raw.seek(0)
        carry, line = b"", 1
        while True:
            try:
                block = stream.read(CHUNK_BYTES)
            except (OSError, EOFError) as exc:
                raise DataError(path, line, f"cannot read the file from about this line on: {exc}") from None
            if not block:
                break
            data = carry + block
            cut = data.rfind(b"\n") + 1
            carry = data[cut:]
            if len(carry) > MAX_LINE_BYTES:  # else a file without line ends is copied block after block
                raise DataError(path, line, f"no line end in {len(carry):,} bytes: not a CSV of klines or "
                                            f"trades, whose lines end in \\n and are far shorter")
            if cut:
                text = _decode(path, line, data[:cut])
                line += text.count("\n")
                yield text
        if carry:
            yield _decode(path, line, carry + b"\n")


def _decode(path: Path, line: int, data: bytes) -> str:
    try:
        text = data.decode()
    except UnicodeDecodeError as exc:
        raise DataError(path, line + data.count(b"\n", 0, exc.start), "not a text (UTF-8) CSV line") from None
    return text.replace("\r", "") if "\r" in text else text


class _Table:
    """A CSV file's rows as converted columns, block by block, with the file's layout."""

    def __init__(self, path: Path, fields: Sequence[Field], names: dict[str, tuple[str, ...]],
                 headerless: dict[int, dict[str, int]], what: str) -> None:
        self.path, self.fields = path, fields
        self._blocks = _blocks(path)
        first = next(self._blocks, "")
        if not first:
            raise DataError(path, None, f"empty file: expected {what}")
        head_end = first.index("\n") + 1
        head = first[:head_end - 1].split(",")
        self.has_header = not head[0].strip().isdigit()
        self.ncols = len(head)
        if self.has_header:
            self.columns = self._by_name(head, names, what)
            first = first[head_end:]
        elif self.ncols in headerless:
            self.columns = headerless[self.ncols]
        else:
            raise DataError(path, 1, f"{self.ncols} columns without a header: expected {what} with "
                                     f"{' or '.join(map(str, headerless))} columns")
        self._first = first
        self._used = [self.columns[name] for name, _ in fields]

    def _by_name(self, head: list[str], names: dict[str, tuple[str, ...]], what: str) -> dict[str, int]:
        index = {name.strip(): i for i, name in enumerate(head)}
        columns, missing = {}, []
        for field, aliases in names.items():
            found = [index[a] for a in aliases if a in index]
            if found:
                columns[field] = found[0]
            else:
                missing.append("/".join(aliases))
        if missing:
            raise DataError(self.path, 1, f"header lacks {', '.join(missing)}: expected {what}")
        return columns

    def columns_by_block(self) -> Iterator[tuple[int, list[list]]]:
        """(file line of the block's first row, one converted list per field)."""
        line = 2 if self.has_header else 1
        for text in chain([self._first], self._blocks):
            if text:
                rows = text.count("\n")
                yield line, self._convert(line, text, rows)
                line += rows

    def _convert(self, line: int, text: str, rows: int) -> list[list]:
        # All fields in one list, then each column as a slice: far cheaper than row lists.
        # Each line end becomes a field of its own, "\n", and no other field holds one, so
        # every row has ncols fields exactly when every (ncols + 1)th field is a line end.
        stride = self.ncols + 1
        flat = text.replace("\n", ",\n,").split(",")
        flat.pop()  # the empty field after the last line end
        if len(flat) != rows * stride or flat[stride - 1::stride].count("\n") != rows:
            raise self._bad_row(line, text)
        try:
            out = [list(map(conv, flat[i::stride])) for i, (_, conv) in zip(self._used, self.fields)]
        except (ValueError, ArithmeticError, KeyError):
            raise self._bad_row(line, text) from None
        # Decimal() accepts NaN and Infinity, whose every spelling holds an n or an N.
        if "n" in text or "N" in text:
            for (_, conv), values in zip(self.fields, out):
                if conv is Decimal and not all(map(Decimal.is_finite, values)):
                    raise self._bad_row(line, text)
        return out

    def _bad_row(self, line: int, block: str) -> DataError:
        """The first bad row of a block the fast path refused, as an error naming it."""
        for n, text in enumerate(block.split("\n")[:-1], line):
            row = text.split(",")
            if len(row) != self.ncols:
                problem = "blank line" if not text else f"{len(row)} columns, expected {self.ncols}"
                return DataError(self.path, n, problem)
            for (name, conv), i in zip(self.fields, self._used):
                value = None
                try:
                    value = conv(row[i])
                except (ValueError, ArithmeticError, KeyError):
                    pass
                if value is None or (isinstance(value, Decimal) and not value.is_finite()):
                    return DataError(self.path, n, f"{name} {row[i]!r} is not {_EXPECTED.get(conv, 'valid')}")
        raise AssertionError(f"{self.path}: a block at line {line} failed to parse but no bad row was found")


def _check_order(path: Path, line: int, times: list[int], previous: int | None, strict: bool, what: str) -> None:
    """Times must increase (strictly for bars: a repeated open time is a duplicate bar)."""
    ok = le if not strict else lt
    if (previous is None or ok(previous, times[0])) and all(map(ok, times, islice(times, 1, None))):
        return
    before = [previous] + times[:-1]
    for n, (prev, now) in enumerate(zip(before, times), line):
        if prev is not None and not ok(prev, now):
            problem = ("repeats the previous one (duplicate)" if prev == now
                       else f"is before the previous {prev} (file not sorted by time)")
            raise DataError(path, n, f"{what} {now} {problem}")


def _name_tokens(path: Path) -> list[str]:
    return _TOKEN_SEPARATORS.split(path.name)


def _symbol_from_name(path: Path, symbol: str | None) -> str:
    if symbol is not None:
        return symbol
    for token in _name_tokens(path):
        if _SYMBOL_TOKEN.match(token):
            return token
    raise DataError(path, None, "cannot tell the symbol from the file name; pass symbol=")


def _interval_from_name(path: Path) -> str | None:
    return next((t for t in _name_tokens(path) if _INTERVAL_TOKEN.match(t)), None)


# ----------------------------------------------------------------------------- public


def read_klines(path: str | Path, *, venue: str = "binance", symbol: str | None = None,
                interval: str | None = None) -> Iterator[Bar]:
    """Bars from a Binance kline CSV: `open_time,open,high,low,close,volume` with a header,
    or the 12-column layout with or without one. `symbol` and `interval` default to the
    ones in the file name; else the interval is the gap between the first two bars."""
    path = Path(path)
    symbol = _symbol_from_name(path, symbol)
    interval = interval or _interval_from_name(path)
    table = _Table(path, KLINE_FIELDS, KLINE_NAMES, KLINE_HEADERLESS, "a Binance kline CSV")
    return _bars(table, venue, symbol, interval)


def _bars(table: _Table, venue: str, symbol: str, interval: str | None) -> Iterator[Bar]:
    previous: int | None = None
    scale = step = 0
    prefix = ""
    for line, (times, opens, highs, lows, closes, volumes) in table.columns_by_block():
        if not times:
            continue
        _check_order(table.path, line, times, previous, True, "open_time")
        if not scale:
            scale = _time_scale(times[0])
            if interval is None:
                if len(times) < 2:
                    raise DataError(table.path, line, "cannot infer the interval from a single bar; pass interval=")
                interval = format_interval((times[1] - times[0]) * scale)
            step = parse_interval(interval)
            prefix = bar_id_prefix(venue, symbol, interval)
        previous = times[-1]
        for t, o, h, low, c, v in zip(times, opens, highs, lows, closes, volumes):
            ts = t * scale
            yield Bar(id=f"{prefix}{ts}", ts_event=ts + step, venue=venue, symbol=symbol, interval=interval,
                      ts_open=ts, open=o, high=h, low=low, close=c, volume=v)


def read_trades(path: str | Path, *, venue: str = "binance", symbol: str | None = None) -> Iterator[Trade]:
    """Trades from a Binance trades capture (`trade_id,price,qty,trade_time_ms,...`), an
    aggTrades CSV (`agg_trade_id,price,quantity,...,transact_time,is_buyer_maker,...`,
    with or without header) or a data.binance.vision trades CSV. Times never go back."""
    path = Path(path)
    symbol = _symbol_from_name(path, symbol)
    table = _Table(path, TRADE_FIELDS, TRADE_NAMES, TRADE_HEADERLESS, "a Binance trades or aggTrades CSV")
    return _trades(table, venue, symbol)


def _trades(table: _Table, venue: str, symbol: str) -> Iterator[Trade]:
    previous: int | None = None
    scale = 0
    prefix = trade_id_prefix(venue, symbol)
    for line, (ids, prices, qtys, times, sides) in table.columns_by_block():
        if not times:
            continue
        _check_order(table.path, line, times, previous, False, "trade time")
        scale = scale or _time_scale(times[0])
        previous = times[-1]
        for i, p, q, t, s in zip(ids, prices, qtys, times, sides):
            yield Trade(id=f"{prefix}{i}", ts_event=t * scale, venue=venue, symbol=symbol, price=p, qty=q,
                        aggressor=s)


def read_funding(path: str | Path, *, venue: str = "binance",
                 symbol: str | None = None) -> Iterator[FundingRateSettled]:
    """Funding from a rate history CSV: `funding_time_ms,funding_rate` (or the REST names
    `fundingTime,fundingRate`, or data.binance.vision's `calc_time,...,last_funding_rate`), times
    in ms, strictly increasing. The symbol defaults to the one in the file name."""
    path = Path(path)
    symbol = _symbol_from_name(path, symbol)
    table = _Table(path, FUNDING_FIELDS, FUNDING_NAMES, FUNDING_HEADERLESS, "a Binance funding rate CSV")
    previous: int | None = None
    for line, (times, rates) in table.columns_by_block():
        if not times:
            continue
        _check_order(table.path, line, times, previous, True, "funding time")
        previous = times[-1]
        for n, (t, rate) in enumerate(zip(times, rates), line):
            try:
                yield settled(venue, symbol, t, rate, None)
            except ValueError as exc:
                raise DataError(path, n, str(exc)) from None


def kind_of(path: str | Path) -> str:
    """What a market-data file holds, by its header (else its column count): "klines", "trades",
    "funding" or "quotes" (a bookTicker capture); read no further than its first line."""
    blocks = _blocks(Path(path))
    try:
        head = next(blocks, "").split("\n", 1)[0].split(",")
    finally:
        blocks.close()
    names = {name.strip() for name in head}
    if "open_time" in names or (head[0].isdigit() and len(head) in KLINE_HEADERLESS):
        return "klines"
    if "price" in names or (head[0].isdigit() and len(head) in TRADE_HEADERLESS):
        return "trades"
    if names & set(FUNDING_NAMES["rate"]) or (head[0].isdigit() and len(head) in FUNDING_HEADERLESS):
        return "funding"
    from services.ingest.quotes import is_book_ticker  # it reads through this module

    if is_book_ticker(names):
        return "quotes"
    raise DataError(path, 1, f"neither a Binance kline, trades, bookTicker nor funding rate CSV: the first line is "
                             f"{','.join(head)[:120]!r}")


def read_market_file(path: str | Path, *, venue: str = "binance", symbol: str | None = None,
                     interval: str | None = None
                     ) -> Iterator[Bar] | Iterator[Trade] | Iterator[Quote] | Iterator[FundingRateSettled]:
    """Bars, trades, quotes (a bookTicker capture) or funding rates, whichever the file holds (by
    its header, else its column count). `interval` applies to kline files."""
    path = Path(path)
    kind = kind_of(path)
    if kind == "klines":
        return read_klines(path, venue=venue, symbol=symbol, interval=interval)
    if kind == "trades":
        return read_trades(path, venue=venue, symbol=symbol)
    if kind == "funding":
        return read_funding(path, venue=venue, symbol=symbol)
    from services.ingest.quotes import read_book_ticker  # it reads through this module

    return read_book_ticker(path, venue=venue, symbol=symbol)
