"""The backtest's output files: fills.csv, trades.csv, equity.csv and metrics.json.

Numbers are written exactly: Decimals in plain positional notation (never `1E+1`); in
fills and trades without trailing zeros (a flip's fee share is computed at 34 digits and
would otherwise print as `1.271380000000000000`); JSON numbers straight from the Decimal.
Times are ISO-8601 UTC with a `Z`; fractional seconds appear only when the time has them."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from decimal import MAX_PREC, Context, Decimal
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from proto.events import OrderFilled
from services.portfolio.metrics import NS_PER_DAY, NS_PER_S, EquityPoint, RoundTripLike

FILLS_COLUMNS = ("time", "symbol", "side", "qty", "price", "fee", "reason")
TRADES_COLUMNS = ("entry_time", "exit_time", "symbol", "side", "qty", "entry_price", "exit_price",
                  "fees", "pnl", "return_pct", "duration_s", "exit_reason")
EQUITY_COLUMNS = ("time", "equity")

_json = msgspec.json.Encoder(decimal_format="number")
_TWO_DIGITS = [f"{i:02d}" for i in range(60)]


class _Clocks(dict[int, str]):
    """ns into a day -> `HH:MM:SS[.fffffffff]Z`, keeping the texts of whole seconds (at most
    86,400). A dict with __missing__, so that a hit runs no Python code."""

    def __missing__(self, ns: int) -> str:
        secs, frac = divmod(ns, NS_PER_S)
        hours, rest = divmod(secs, 3600)
        # fills and trades miss at almost every time: a table is 4x faster than strftime here
        clock = f"{_TWO_DIGITS[hours]}:{_TWO_DIGITS[rest // 60]}:{_TWO_DIGITS[rest % 60]}"
        if frac:
            return f"{clock}.{frac:09d}".rstrip("0") + "Z"
        text = self[ns] = clock + "Z"
        return text


def _day(ns: int) -> tuple[int, str]:
    """The start (ns) and `YYYY-MM-DDT` text of the UTC day of `ns`."""
    day = ns // NS_PER_DAY
    return day * NS_PER_DAY, time.strftime("%Y-%m-%dT", time.gmtime(day * 86_400))


class IsoTime:
    """ns -> `YYYY-MM-DDTHH:MM:SS[.fffffffff]Z`. A backtest formats one time per bar, in time
    order: it keeps the current day's start and date text, so a time of that day costs a
    subtraction and a lookup of its time-of-day text. Any order and any ns are right."""

    __slots__ = ("_start", "_date", "_clocks")

    def __init__(self) -> None:
        self._start, self._date = _day(0)
        self._clocks = _Clocks()

    def __call__(self, ns: int) -> str:
        return next(self.each((ns,)))

    def each(self, times: Iterable[int]) -> Iterator[str]:
        """`self(ns)` for each of `times`: the writers' path, with the day in locals (half the cost
        of a call per time)."""
        start, date, clocks = self._start, self._date, self._clocks
        for ns in times:
            sod = ns - start
            if not 0 <= sod < NS_PER_DAY:
                self._start, self._date = start, date = _day(ns)
                sod = ns - start
            yield date + clocks[sod]


_WIDE = Context(prec=MAX_PREC)  # normalize() without rounding away any digit


def num(value: Decimal) -> str:
    """A Decimal as plain positional text, no exponent (str() is faster and usually is)."""
    text = str(value)
    return format(value, "f") if "E" in text else text


def short(value: Decimal) -> str:
    """`num` without trailing zeros: the same value."""
    text = str(value)
    if "." in text and "E" not in text:  # plain with a point: trimming the text is the same, twice as fast
        return text.rstrip("0").rstrip(".")
    return format(value.normalize(_WIDE), "f")


class _CsvText(dict[Any, str]):
    """Free text (symbol, side, reason) -> that field as csv.writer writes it (quoted if it holds a
    comma, a quote or a line break). csv.writer costs about 2 us a row; free text takes few values,
    so each goes through it once, and rows are joined as plain text."""

    def __missing__(self, value: Any) -> str:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow([value, ""])  # not alone: csv would quote a lone ""
        text = self[value] = buf.getvalue()[:-2]
        return text


# Rows formatted and written at a time: the text in memory stays bounded, whatever the run's length.
CHUNK_ROWS = 10_000

Row = TypeVar("Row")


def _write_csv(path: Path, columns: Sequence[str], rows: Iterable[Row],
               lines: Callable[[Sequence[Row]], str]) -> None:
    """The header, then `lines(chunk)` (each line ending in a newline) for chunks of CHUNK_ROWS rows."""
    rows = rows if isinstance(rows, Sequence) else list(rows)  # read twice per chunk: times, then the rest
    with path.open("w", encoding="utf-8", newline="") as f:
        f.write(",".join(columns) + "\n")
        for start in range(0, len(rows), CHUNK_ROWS):
            f.write(lines(rows[start:start + CHUNK_ROWS]))


def write_fills(path: Path, fills: Iterable[OrderFilled]) -> None:
    text, iso = _CsvText(), IsoTime()

    def lines(chunk: Sequence[OrderFilled]) -> str:
        times = iso.each(x.ts_event for x in chunk)
        return "".join([f"{s},{text[x.symbol]},{text[x.side]},{short(x.qty)},{short(x.price)},{short(x.fee)},"
                        f"{text[x.reason]}\n" for s, x in zip(times, chunk)])

    _write_csv(path, FILLS_COLUMNS, fills, lines)


def write_trades(path: Path, trips: Iterable[RoundTripLike]) -> None:
    text, entry_iso, exit_iso = _CsvText(), IsoTime(), IsoTime()

    def lines(chunk: Sequence[RoundTripLike]) -> str:
        entries = entry_iso.each(t.entry_time_ns for t in chunk)
        exits = exit_iso.each(t.exit_time_ns for t in chunk)
        return "".join([
            f"{s},{e},{text[t.symbol]},{text[t.side]},{short(t.qty)},{short(t.entry_price)},{short(t.exit_price)},"
            f"{short(t.fees)},{short(t.pnl)},{short(t.return_pct)},{t.duration_s},{text[t.exit_reason]}\n"
            for s, e, t in zip(entries, exits, chunk)])

    _write_csv(path, TRADES_COLUMNS, trips, lines)


def write_equity(path: Path, equity: Iterable[EquityPoint]) -> None:
    iso = IsoTime()

    def lines(chunk: Sequence[EquityPoint], value: Callable[[Decimal], str] = str) -> str:
        times = iso.each(t for t, _ in chunk)
        text = "".join([f"{s},{value(e)}\n" for s, (_, e) in zip(times, chunk)])
        # An E can only be an exponent that str() wrote (an ISO time holds none): rare, so num(),
        # dearer by a call per value, runs only then.
        return lines(chunk, num) if value is str and "E" in text else text

    _write_csv(path, EQUITY_COLUMNS, equity, lines)


def metrics_json(metrics: Mapping[str, Any]) -> bytes:
    """Pretty enough to read, exact for Decimals; NaN/inf become null."""
    return msgspec.json.format(_json.encode(metrics), indent=2) + b"\n"


def write_all(out_dir: Path, fills: Sequence[OrderFilled], trips: Sequence[RoundTripLike],
              equity: Sequence[EquityPoint], metrics: Mapping[str, Any]) -> None:
    """fills.csv, trades.csv, equity.csv and metrics.json into `out_dir` (created if missing)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_fills(out_dir / "fills.csv", fills)
    write_trades(out_dir / "trades.csv", trips)
    write_equity(out_dir / "equity.csv", equity)
    (out_dir / "metrics.json").write_bytes(metrics_json(metrics))
