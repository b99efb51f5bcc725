"""The backtest's output files: fills.csv, trades.csv, equity.csv and metrics.json.

Numbers are written exactly: Decimals in plain positional notation (never `1E+1`); in
fills and trades without trailing zeros (a flip's fee share is computed at 34 digits and
would otherwise print as `1.271380000000000000`); JSON numbers straight from the Decimal.
Times are ISO-8601 UTC with a `Z`; fractional seconds appear only when the time has them."""

from __future__ import annotations

import csv
import time
from collections.abc import Iterable, Mapping, Sequence
from decimal import MAX_PREC, Context, Decimal
from pathlib import Path
from typing import Any

import msgspec

from proto.events import OrderFilled
from services.portfolio.metrics import EquityPoint, RoundTripLike

FILLS_COLUMNS = ("time", "symbol", "side", "qty", "price", "fee", "reason")
TRADES_COLUMNS = ("entry_time", "exit_time", "symbol", "side", "qty", "entry_price", "exit_price",
                  "fees", "pnl", "return_pct", "duration_s", "exit_reason")
EQUITY_COLUMNS = ("time", "equity")

_json = msgspec.json.Encoder(decimal_format="number")


class IsoTime:
    """ns -> `YYYY-MM-DDTHH:MM:SS[.fffffffff]Z`. Caches the last date's text and the
    time-of-day texts it has made (at most 86,400): a backtest formats one time per bar."""

    __slots__ = ("_day", "_date", "_clock")

    def __init__(self) -> None:
        self._day = -1
        self._date = ""
        self._clock: dict[int, str] = {}

    def __call__(self, ns: int) -> str:
        secs, frac = divmod(ns, 1_000_000_000)
        day, sod = divmod(secs, 86_400)
        if day != self._day:
            self._day, self._date = day, time.strftime("%Y-%m-%dT", time.gmtime(day * 86_400))
        clock = self._clock.get(sod)
        if clock is None:
            clock = self._clock[sod] = time.strftime("%H:%M:%S", time.gmtime(sod))
        if frac:
            return f"{self._date}{clock}.{frac:09d}".rstrip("0") + "Z"
        return f"{self._date}{clock}Z"


_WIDE = Context(prec=MAX_PREC)  # normalize() without rounding away any digit


def num(value: Decimal) -> str:
    """A Decimal as plain positional text, no exponent (str() is faster and usually is)."""
    text = str(value)
    return format(value, "f") if "E" in text else text


def short(value: Decimal) -> str:
    """`num` without trailing zeros: the same value."""
    return format(value.normalize(_WIDE), "f")


def write_fills(path: Path, fills: Iterable[OrderFilled]) -> None:
    iso = IsoTime()
    with path.open("w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(FILLS_COLUMNS)
        w.writerows((iso(x.ts_event), x.symbol, x.side, short(x.qty), short(x.price), short(x.fee), x.reason)
                    for x in fills)


def write_trades(path: Path, trips: Iterable[RoundTripLike]) -> None:
    iso = IsoTime()
    with path.open("w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(TRADES_COLUMNS)
        w.writerows((iso(t.entry_time_ns), iso(t.exit_time_ns), t.symbol, t.side, short(t.qty),
                     short(t.entry_price), short(t.exit_price), short(t.fees), short(t.pnl), short(t.return_pct),
                     t.duration_s, t.exit_reason) for t in trips)


def write_equity(path: Path, equity: Iterable[EquityPoint]) -> None:
    iso = IsoTime()
    with path.open("w", newline="") as f:
        f.write("time,equity\n")
        f.writelines(f"{iso(t)},{num(e)}\n" for t, e in equity)


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
