"""The backtest against a model written here with plain arithmetic, on real BTCUSDT 1m bars.

The model knows nothing of the engine: it reads the CSV itself, computes the moving
averages from scratch every bar, fills at the next open (or this close) with adverse
slippage and a fee of fee_bps of notional, closes what is open at the last close, splits a
flip's fee in half between its two round trips, and values equity as capital + cash flows
of the fills + position x close. Fills, round trips and every equity mark must be equal
to the engine's output files, Decimal for Decimal."""

from __future__ import annotations

import csv
import gc
import gzip
import itertools
import subprocess
import sys
import tracemalloc
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Context, Decimal, localcontext
from pathlib import Path

import msgspec
import pytest

from bosun.apps import backtest, outputs, report
from services.portfolio import metrics
from services.risk.config import LimitsConfig
from tests.datafiles import BTC_1M, ETH_1M, XRP_FUNDING, XRP_MARK_8H, data_file

D = Decimal
BARS = 3000
QTY = D("0.01")
CAPITAL = D(10000)
MIN_NS = 60_000_000_000


@pytest.fixture(scope="module")
def btc_slice(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first BARS bars of the real file, as a plain CSV named like the original."""
    src = data_file(BTC_1M)
    dst = tmp_path_factory.mktemp("data") / src.name.removesuffix(".gz")
    with gzip.open(src, "rt") as f, dst.open("w") as out:
        out.writelines(itertools.islice(f, BARS + 1))
    return dst


# ----------------------------------------------------------------------------- the model


@dataclass
class ModelBar:
    open_ns: int
    close_ns: int
    open: Decimal
    close: Decimal


def read_bars(path: Path) -> list[ModelBar]:
    with path.open() as f:
        return [ModelBar(int(r["open_time"]) * 1_000_000, int(r["open_time"]) * 1_000_000 + MIN_NS,
                         D(r["open"]), D(r["close"])) for r in csv.DictReader(f)]


def directions(bars: list[ModelBar], fast: int, slow: int, long_only: bool) -> list[int | None]:
    """The direction after each bar's close: SMAs from scratch; None before both exist."""
    out: list[int | None] = []
    current = None
    for i in range(len(bars)):
        if i + 1 >= slow:
            closes = [b.close for b in bars[i + 1 - slow:i + 1]]
            # fast avg > slow avg  <=>  sum_fast * slow > sum_slow * fast (no rounding division)
            lhs, rhs = sum(closes[-fast:]) * slow, sum(closes) * fast
            if lhs > rhs:
                current = 1
            elif lhs < rhs:
                current = 0 if long_only else -1
        out.append(current)
    return out


@dataclass
class ModelFill:
    time_ns: int
    side: str
    qty: Decimal
    price: Decimal
    fee: Decimal
    reason: str
    bar: int  # the bar after whose close the fill is in the equity


def model_fills(bars: list[ModelBar], dirs: list[int | None], fill: str, fee_bps: Decimal,
                slip_bps: Decimal) -> list[ModelFill]:
    fills: list[ModelFill] = []
    position = D(0)

    def trade(qty: Decimal, raw_price: Decimal, t: int, reason: str, bar: int) -> None:
        nonlocal position
        side = "buy" if qty > 0 else "sell"
        price = raw_price * (1 + slip_bps / 10000) if side == "buy" else raw_price * (1 - slip_bps / 10000)
        fills.append(ModelFill(t, side, abs(qty), price, fee_bps / 10000 * abs(qty) * price, reason, bar))
        position += qty

    for i, d in enumerate(dirs):
        if d is None or d * QTY == position:
            continue
        if fill == "close":
            trade(d * QTY - position, bars[i].close, bars[i].close_ns, "signal", i)
        elif i + 1 < len(bars):  # next open; a signal on the last bar never fills
            trade(d * QTY - position, bars[i + 1].open, bars[i + 1].open_ns, "signal", i + 1)
    if position:
        trade(-position, bars[-1].close, bars[-1].close_ns, "end_of_data", len(bars) - 1)
    return fills


@dataclass
class ModelTrip:
    entry_ns: int
    exit_ns: int
    side: str
    qty: Decimal
    entry_price: Decimal
    exit_price: Decimal
    fees: Decimal
    pnl: Decimal
    return_pct: Decimal
    reason: str


def model_trips(fills: list[ModelFill]) -> list[ModelTrip]:
    """Fixed quantity: every fill opens (q), closes (q) or flips (2q, fee split in halves)."""
    trips: list[ModelTrip] = []
    open_: tuple[ModelFill, int, Decimal] | None = None  # entry fill, sign, entry fee share
    for f in fills:
        sign = 1 if f.side == "buy" else -1
        entry_fee = f.fee
        if open_ is not None:
            entry, held_sign, fee_in = open_
            exit_fee = f.fee if f.qty == QTY else f.fee / 2
            entry_fee = f.fee - exit_fee
            fees = fee_in + exit_fee
            pnl = (f.price - entry.price) * QTY * held_sign - fees
            with localcontext(Context(prec=34)):  # return_pct is a division: 34 significant digits
                ret = pnl / (entry.price * QTY) * 100
            trips.append(ModelTrip(entry.time_ns, f.time_ns, "long" if held_sign > 0 else "short", QTY,
                                   entry.price, f.price, fees, pnl, ret, f.reason))
            open_ = None
            if f.qty == QTY:
                continue
        open_ = (f, sign, entry_fee)
    assert open_ is None, "the model leaves nothing open after end_of_data"
    return trips


def model_equity(bars: list[ModelBar], fills: list[ModelFill]) -> list[tuple[int, Decimal]]:
    """capital + cash flows of the fills so far + position x close, at each close; a fill at
    the next open comes after the close it was decided at, the end_of_data close before
    the last mark."""
    out = []
    cash, position, k = CAPITAL, D(0), 0
    for i, b in enumerate(bars):
        while k < len(fills) and fills[k].bar <= i:
            f = fills[k]
            signed = f.qty if f.side == "buy" else -f.qty
            cash -= signed * f.price + f.fee
            position += signed
            k += 1
        out.append((b.close_ns, cash + position * b.close))
    return out


# ----------------------------------------------------------------------------- engine side


def iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def run_engine(paths: list[Path], out: Path, **flags: object) -> backtest.Result:
    markets, bars = backtest.open_data(paths)
    config = backtest.config_from_flags(backtest.Flags(**flags), markets)  # type: ignore[arg-type]
    result = backtest.run(config, bars)
    outputs.write_all(out, result.fills, result.trips, result.equity, result.metrics)
    return result


def rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


CASES = [
    pytest.param(False, "next_open", D(10), D(5), id="long-short-next-open"),
    pytest.param(True, "next_open", D(10), D(5), id="long-only-next-open"),
    pytest.param(False, "close", D("7.5"), D(0), id="long-short-close"),
    pytest.param(True, "close", D(10), D(2), id="long-only-close"),
]


@pytest.mark.parametrize(("long_only", "fill", "fee_bps", "slip_bps"), CASES)
def test_fills_trades_and_equity_equal_the_model(btc_slice: Path, tmp_path: Path, long_only: bool, fill: str,
                                                 fee_bps: Decimal, slip_bps: Decimal) -> None:
    result = run_engine([btc_slice], tmp_path, params={"fast": 10, "slow": 30}, long_only=long_only, qty=QTY,
                        capital=CAPITAL, fee_bps=fee_bps, slippage_bps=slip_bps, fill=fill)
    bars = read_bars(btc_slice)
    fills = model_fills(bars, directions(bars, 10, 30, long_only), fill, fee_bps, slip_bps)
    trips = model_trips(fills)
    assert len(trips) > 50  # the slice really trades

    got_fills = rows(tmp_path / "fills.csv")
    assert [(r["time"], r["symbol"], r["side"], D(r["qty"]), D(r["price"]), D(r["fee"]), r["reason"])
            for r in got_fills] == [(iso(f.time_ns), "BTCUSDT", f.side, f.qty, f.price, f.fee, f.reason)
                                    for f in fills]

    got_trips = rows(tmp_path / "trades.csv")
    assert list(got_trips[0]) == list(outputs.TRADES_COLUMNS)
    assert [(r["entry_time"], r["exit_time"], r["symbol"], r["side"], D(r["qty"]), D(r["entry_price"]),
             D(r["exit_price"]), D(r["fees"]), D(r["pnl"]), D(r["return_pct"]), float(r["duration_s"]),
             r["exit_reason"]) for r in got_trips] == [
        (iso(t.entry_ns), iso(t.exit_ns), "BTCUSDT", t.side, t.qty, t.entry_price, t.exit_price, t.fees, t.pnl,
         t.return_pct, (t.exit_ns - t.entry_ns) / 1e9, t.reason) for t in trips]
    if long_only:
        assert {r["side"] for r in got_trips} == {"long"}

    expected_equity = model_equity(bars, fills)
    assert [(r["time"], D(r["equity"])) for r in rows(tmp_path / "equity.csv")] == [
        (iso(t), e) for t, e in expected_equity]

    m = result.metrics
    total = sum(t.pnl for t in trips)
    assert m["total_pnl"] == total == expected_equity[-1][1] - CAPITAL
    assert m["num_trades"] == len(trips)
    assert m["total_fees"] == sum(f.fee for f in fills)
    assert m["turnover"] == sum(f.qty * f.price for f in fills)


def test_equity_fraction_sizes_from_equity_on_the_step(btc_slice: Path, tmp_path: Path) -> None:
    result = run_engine([btc_slice], tmp_path, params={"fast": 10, "slow": 30}, equity_fraction=D("0.5"),
                        capital=CAPITAL, fee_bps=D(10), fill="close")
    assert result.trips
    for f in result.fills:
        assert f.qty == f.qty.quantize(D("0.00001"))  # the venue step
    first = result.fills[0]
    assert first.qty == (D("0.5") * CAPITAL / first.price).quantize(D("0.00001"), rounding="ROUND_DOWN")


def test_two_symbols_run_together_and_close_at_the_end(tmp_path: Path) -> None:
    paths = []
    for name in (BTC_1M, ETH_1M):
        src = data_file(name)
        dst = tmp_path / src.name.removesuffix(".gz")
        with gzip.open(src, "rt") as f, dst.open("w") as out:
            out.writelines(itertools.islice(f, 1001))
        paths.append(dst)
    result = run_engine(paths, tmp_path / "out", params={"fast": 5, "slow": 20}, qty=QTY)
    assert {t.symbol for t in result.trips} == {"BTCUSDT", "ETHUSDT"}
    assert len(result.equity) == 1000  # one mark per bar time, both symbols marked together
    assert [t for t, _ in result.equity] == sorted({t for t, _ in result.equity})
    ends = [t for t in result.trips if t.exit_reason == "end_of_data"]
    assert {t.symbol for t in ends} == {"BTCUSDT", "ETHUSDT"}
    assert result.metrics["total_pnl"] == sum(t.pnl for t in result.trips)


def test_files_of_one_symbol_join_in_time_order(btc_slice: Path, tmp_path: Path) -> None:
    lines = btc_slice.read_text().splitlines(keepends=True)
    first, second = tmp_path / "BTCUSDT_part1.csv", tmp_path / "BTCUSDT_part2.csv"
    first.write_text("".join(lines[:1501]))
    second.write_text(lines[0] + "".join(lines[1501:]))
    whole = run_engine([btc_slice], tmp_path / "whole", params={"fast": 10, "slow": 30}, qty=QTY)
    parts = run_engine([second, first], tmp_path / "parts", params={"fast": 10, "slow": 30}, qty=QTY)
    assert parts.fills == whole.fills and parts.equity == whole.equity


def test_overlapping_files_are_refused_naming_the_file(btc_slice: Path, tmp_path: Path) -> None:
    lines = btc_slice.read_text().splitlines(keepends=True)
    first, second = tmp_path / "BTCUSDT_a.csv", tmp_path / "BTCUSDT_b.csv"
    first.write_text("".join(lines[:101]))
    second.write_text(lines[0] + "".join(lines[100:200]))  # repeats bar 100
    markets, bars = backtest.open_data([first, second])
    with pytest.raises(ValueError, match="BTCUSDT_b.csv.*overlap"):
        list(bars)


def test_memory_holds_results_not_bars(tmp_path: Path) -> None:
    """Retained memory per extra bar stays near one equity mark (~200 B), far below a Bar (~900 B)."""
    src = data_file(BTC_1M)

    def retained(n: int) -> int:
        path = tmp_path / f"BTCUSDT_{n}.csv"
        with gzip.open(src, "rt") as f, path.open("w") as out:
            out.writelines(itertools.islice(f, n + 1))
        markets, bars = backtest.open_data([path])
        config = backtest.config_from_flags(backtest.Flags(params={"fast": 10, "slow": 30}, qty=QTY), markets)
        tracemalloc.start()
        result = backtest.run(config, bars)
        size = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        assert result.bars == n
        return size

    small, large = retained(2000), retained(12000)
    assert (large - small) / 10000 < 450


@pytest.mark.parametrize("setup", ["plain", "every limit", "funding"])
def test_a_finished_run_leaves_nothing_for_the_cyclic_gc(btc_slice: Path, setup: str) -> None:
    """The actors and the bus hold each other while a run trades. Everything the run built must go
    when it returns: left to the cyclic GC (some 10,000 objects at 50,000 bars), a sweep's next run
    would pay for collecting this one's."""
    paths = [data_file(XRP_MARK_8H), data_file(XRP_FUNDING)] if setup == "funding" else [btc_slice]
    markets, bars = backtest.open_data(paths)
    config = backtest.config_from_flags(backtest.Flags(params={"fast": 2, "slow": 5}, qty=QTY), markets)
    if setup == "every limit":
        limits = LimitsConfig(max_price_age_s=None, max_position=D("0.015"), on_breach="clamp", max_orders_per_min=2,
                              max_open_orders=3, max_daily_loss=D(40), max_drawdown=D(100))
        config = msgspec.structs.replace(config, clients=[msgspec.structs.replace(config.clients[0], risk=limits)])
    funding = backtest.open_funding(paths, markets) if setup == "funding" else None
    gc.collect()
    gc.disable()
    try:
        result = backtest.run(config, bars, funding=funding)
        del bars
        assert gc.collect() == 0
    finally:
        gc.enable()
    assert len(result.fills) > 10


def test_report_is_one_self_contained_page(btc_slice: Path, tmp_path: Path) -> None:
    result = run_engine([btc_slice], tmp_path, params={"fast": 10, "slow": 30}, qty=QTY)
    page = report.render(result.metrics, result.trips, result.equity, result.capital, "t", result.fills)
    # equity, drawdown, pnl per day, positions, the pnl distribution
    assert page.count("<svg") == 5 and "<script" not in page and "<link" not in page and "src=" not in page
    assert page.count("<tr>") >= len(result.trips) + 25  # every trade and every metric
    assert "end_of_data" in page or all(t.exit_reason == "signal" for t in result.trips)
    for heading in ("PnL per day", "Positions over time", "Round-trip PnL distribution", "By strategy", "By venue",
                    "Execution quality"):
        assert f"<h2>{heading}" in page, heading
    assert "<td>cli</td>" in page and "<td>venue binance</td>" in page  # the strategy and the venue, by name
    empty = report.render(metrics.compute([], [], CAPITAL), [], [], CAPITAL, "no data")
    assert "no round trips" in empty and "not enough data" in empty and "no fills" in empty
    assert "no orders in the order log" in empty


# ----------------------------------------------------------------------------- output formatting


def test_iso_time_is_exact_for_any_ns_in_any_order() -> None:
    import random

    rng = random.Random(5)
    day = 86_400 * 10**9
    base = 1_727_740_800 * 10**9
    times = [base + i * MIN_NS for i in range(3000)]  # in order, across days
    times += [rng.randrange(-100 * day, 30_000 * day) for _ in range(2000)]  # any order, any ns
    times += [base + rng.randrange(day) // 10**k * 10**k for k in range(10) for _ in range(50)]  # fractions
    times += [0, -1, day - 1, day, base - 1, base, base + 1]

    def expected(ns: int) -> str:
        secs, frac = divmod(ns, 10**9)
        text = datetime.fromtimestamp(secs, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
        return (f"{text}.{frac:09d}".rstrip("0") if frac else text) + "Z"

    iso_time = outputs.IsoTime()
    assert [iso_time(ns) for ns in times] == [expected(ns) for ns in times]
    assert list(outputs.IsoTime().each(times)) == [expected(ns) for ns in times]


def test_short_equals_normalized_plain_text() -> None:
    from decimal import MAX_PREC

    for text in ["0", "-0", "0.000", "-0.0", "100", "100.0", "1E+2", "-5.00E+3", "1.50", "12.3400", "0.0000001",
                 "1E-7", "63737.96", "1.274879600000000000", "-0.1810948392156862745098039215686275",
                 "NaN", "-Infinity"]:
        value = D(text)
        assert outputs.short(value) == format(value.normalize(Context(prec=MAX_PREC)), "f"), text


def test_csv_free_text_is_quoted_as_csv_writer_does(tmp_path: Path) -> None:
    from proto.events import OrderFilled

    odd = ["plain", "a,b", 'a"b', "a\nb", "a\rb", "", " a"]
    fills = [OrderFilled(id=f"f{i}", ts_event=i * 10**9, client_order_id="o", client="c", venue="v", symbol=s,
                         side="buy", qty=D("1.50"), price=D("2"), fee=D("0.1"), reason=s) for i, s in enumerate(odd)]
    outputs.write_fills(tmp_path / "fills.csv", fills)
    with (tmp_path / "expected.csv").open("w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(outputs.FILLS_COLUMNS)
        w.writerows((outputs.IsoTime()(x.ts_event), x.symbol, x.side, "1.5", "2", "0.1", x.reason) for x in fills)
    assert (tmp_path / "fills.csv").read_bytes() == (tmp_path / "expected.csv").read_bytes()


def test_writers_take_iterators_and_write_in_chunks_the_same_rows(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    day = 86_400 * 10**9
    equity = [(i * day // 3 + i, D(10_000) + i) for i in range(20)] + [(21 * day, D("1E+5"))]  # an exponent: num()
    outputs.write_equity(tmp_path / "whole.csv", equity)
    monkeypatch.setattr(outputs, "CHUNK_ROWS", 3)
    outputs.write_equity(tmp_path / "chunked.csv", iter(equity))
    whole = (tmp_path / "whole.csv").read_text()
    assert (tmp_path / "chunked.csv").read_text() == whole
    rows = whole.splitlines()
    assert len(rows) == 22 and rows[1] == "1970-01-01T00:00:00Z,10000" and rows[-1] == "1970-01-22T00:00:00Z,100000"


def test_order_to_ack_is_the_venues_submit_latency(btc_slice: Path, tmp_path: Path) -> None:
    """Execution quality in a backtest, against its simulated venue: an order is acknowledged at its
    decision plus the venue's submit latency (at the decision itself without one)."""
    flags = backtest.Flags(params={"fast": 10, "slow": 30}, qty=QTY)
    plain = run_engine([btc_slice], tmp_path, params={"fast": 10, "slow": 30}, qty=QTY)
    assert plain.metrics["execution"]["order_to_ack_ms"] == {"p50": 0.0, "p95": 0.0, "max": 0.0}
    markets, bars = backtest.open_data([btc_slice])
    config = backtest.config_from_flags(flags, markets)
    [client] = config.clients
    late = {name: msgspec.structs.replace(v, submit_latency_ms=D(250)) for name, v in client.venues.items()}
    result = backtest.run(msgspec.structs.replace(config, clients=[msgspec.structs.replace(client, venues=late)]),
                          bars)
    assert result.metrics["execution"]["orders"] > 50
    assert result.metrics["execution"]["order_to_ack_ms"] == {"p50": 250.0, "p95": 250.0, "max": 250.0}


def test_a_reversal_decided_on_the_last_bar_still_ends_flat(tmp_path: Path) -> None:
    """sma 2/5 on XRPUSDT's 8h marks turns from short to long on the very last bar: the buy of 2,000
    never sees a next open, and the close at the end of data was sized against the position it
    leaves (long 1,000). Both fill at the last close, so the run ends flat, not short 2,000."""
    result = run_engine([data_file(XRP_MARK_8H)], tmp_path, params={"fast": 2, "slow": 5}, qty=D(1000))
    last_ts = result.fills[-1].ts_event
    assert [(f.side, f.qty, f.reason) for f in result.fills if f.ts_event == last_ts] == [
        ("buy", D(2000), "signal"), ("sell", D(1000), "end_of_data")]
    held = sum((f.qty if f.side == "buy" else -f.qty for f in result.fills), D(0))
    assert held == 0
    assert result.trips[-1].exit_reason == "end_of_data"


def test_a_backtest_starts_without_an_event_loop_logging_or_dataclasses() -> None:
    """`bosun backtest` is synchronous: asyncio (with ssl and subprocess) and logging cost ~20 ms of
    every run's start, and each frozen dataclass ~0.4 ms to define (a msgspec Struct ~25 us)."""
    code = ("import sys, dataclasses; made = []; define = dataclasses._process_class; "
            "dataclasses._process_class = lambda cls, *a: made.append(cls) or define(cls, *a); "
            "import bosun.apps.backtest_cli, bosun.apps.backtest, bosun.apps.outputs, bosun.apps.report; "
            "print(sorted(m for m in ('asyncio', 'logging') if m in sys.modules), [c.__qualname__ for c in made])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "[] []"
