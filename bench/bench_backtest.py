"""How fast `bosun backtest` runs on real data.

    python bench/bench_backtest.py [--repeat 5] [--profile]

(with the project installed in that interpreter's venv: the interpreter's build moves every
figure, see bench/RESULTS.md; the first line printed names it)

1. sma_cross 10/30 long/short, fixed qty, on 50,000 real BTCUSDT 1m bars: bars/s from
   reading the file to writing fills/trades/equity/metrics (report.html timed apart);
   target >= 100,000 bars/s. Then the whole command's wall time, interpreter start and
   report.html included (`python -m bosun.apps.backtest_cli ...` in a subprocess).
2. The same strategy on bars built from real trade files (5 s bars from the BTCUSDT
   capture, 1 m bars from the XRPETH aggTrades): trades/s, file to outputs; target >= 300,000.
3. Peak memory (tracemalloc) of 10,000 vs 50,000 bars: retained results, not bars.
4. --profile: seconds spent in each bus handler (and the runner's equity marks) over the
   50,000-bar run, bars already in memory.

Prints best and median of --repeat runs after one warm-up. The data folder is
BOSUN_DATA_DIR, else ../shared/data beside the repo."""

from __future__ import annotations

import argparse
import collections
import gzip
import itertools
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bosun.apps import backtest, outputs, report  # noqa: E402
from bosun.runtime import inproc  # noqa: E402
from services.portfolio.actor import PortfolioActor  # noqa: E402
from tests.datafiles import BTC_1M, BTC_TRADES, XRPETH_AGGTRADES, data_dir  # noqa: E402

SMA = {"fast": 10, "slow": 30}


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "unknown")
    import os

    return f"{os.cpu_count()} CPUs ({cpu}), {platform.system()}; {interpreter()}"


def interpreter() -> str:
    """Which CPython runs this: the build moves every figure. Distribution builds (Debian's
    python3.11, python.org's, the Docker images) are compiled with PGO and LTO; pyenv's default
    build is not, and runs this benchmark about 17% slower on the same machine."""
    return f"CPython {platform.python_version()} at {sys.executable} ({' '.join(platform.python_build())})"


def one_run(paths: list[Path], out: Path, interval: str = "1m") -> backtest.Result:
    """File to outputs as the CLI does it, without report.html (timed apart)."""
    markets, bars = backtest.open_data(paths, interval)
    config = backtest.config_from_flags(backtest.Flags(params=SMA, qty=Decimal("0.01")), markets)
    result = backtest.run(config, bars)
    outputs.write_all(out, result.fills, result.trips, result.equity, result.metrics)
    return result


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def show(label: str, units: int, unit: str, times: list[float], target: int | None = None) -> None:
    best, median = units / min(times), units / statistics.median(times)
    verdict = "" if target is None else ("  (target %s/s: %s)" % (f"{target:,}", "met" if best >= target else "MISSED"))
    print(f"{label}: {units:,} {unit} in {min(times):.3f} s best / {statistics.median(times):.3f} s median "
          f"= {best:,.0f} / {median:,.0f} {unit}/s{verdict}")


def trades_in(path: Path) -> int:
    with gzip.open(path, "rt") as f:
        return sum(1 for _ in f) - 1


def profile(path: Path) -> None:
    """Seconds per subscribed handler (each wrapped in a timer: adds ~0.2 us per call)."""
    spent: collections.Counter[str] = collections.Counter()
    calls: collections.Counter[str] = collections.Counter()
    subscribe = inproc.InProcessBus.subscribe

    def timed_subscribe(self: inproc.InProcessBus, pattern: str, handler: Callable[[object], None]) -> None:
        name = getattr(handler, "__qualname__", repr(handler))

        def wrapper(message: object) -> None:
            start = time.perf_counter()
            handler(message)
            spent[name] += time.perf_counter() - start
            calls[name] += 1

        subscribe(self, pattern, wrapper)

    equity = PortfolioActor.equity

    def timed_equity(self: PortfolioActor, client: str) -> Decimal:
        start = time.perf_counter()
        value = equity(self, client)
        spent["PortfolioActor.equity (runner's mark)"] += time.perf_counter() - start
        calls["PortfolioActor.equity (runner's mark)"] += 1
        return value

    inproc.InProcessBus.subscribe = timed_subscribe  # type: ignore[method-assign]
    PortfolioActor.equity = timed_equity  # type: ignore[method-assign]
    try:
        markets, bars = backtest.open_data([path])
        held = list(bars)  # reading is timed apart
        config = backtest.config_from_flags(backtest.Flags(params=SMA, qty=Decimal("0.01")), markets)
        start = time.perf_counter()
        backtest.run(config, iter(held))
        total = time.perf_counter() - start
    finally:
        inproc.InProcessBus.subscribe = subscribe  # type: ignore[method-assign]
        PortfolioActor.equity = equity  # type: ignore[method-assign]
    n = len(held)
    print(f"\nprofile: run() over {n:,} bars already in memory: {total:.3f} s = {total / n * 1e6:.1f} us/bar")
    for name, secs in spent.most_common():
        print(f"  {name:42s} {secs:6.3f} s {calls[name]:7,} calls {secs / calls[name] * 1e6:7.2f} us/call "
              f"{secs / n * 1e6:6.2f} us/bar")
    overhead = _timer_overhead() * sum(calls.values())
    rest = total - sum(spent.values()) - overhead
    print(f"  {'the rest: snapshots, bus routing, clock':42s} {rest:6.3f} s {'':19s} {rest / n * 1e6:6.2f} us/bar")
    print(f"  (the timers themselves cost {overhead:.3f} s, taken out of the rest)")


def _timer_overhead() -> float:
    """Seconds one timed call adds outside the measured span (the wrapper and counters)."""
    spent: collections.Counter[str] = collections.Counter()

    def wrapper(message: object) -> None:
        start = time.perf_counter()
        spent["x"] += time.perf_counter() - start
        spent["n"] += 1

    def bare(message: object) -> None:
        pass

    reps = 200_000
    start = time.perf_counter()
    for _ in range(reps):
        wrapper(None)
    timed_loop = time.perf_counter() - start - spent["x"]
    start = time.perf_counter()
    for _ in range(reps):
        bare(None)
    return (timed_loop - (time.perf_counter() - start)) / reps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    data = data_dir()
    btc, btc_trades, xrp_trades = data / BTC_1M, data / BTC_TRADES, data / XRPETH_AGGTRADES
    for path in (btc, btc_trades, xrp_trades):
        if not path.exists():
            print(f"missing {path}: set BOSUN_DATA_DIR to the shared data folder", file=sys.stderr)
            return 2
    print(machine())
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        result = one_run([btc], out / "bars")
        print(f"sma_cross 10/30 long/short on {btc.name}: {result.bars:,} bars, {len(result.trips):,} round trips")
        show("file -> outputs (no report)", result.bars, "bars", timed(lambda: one_run([btc], out / "bars"),
                                                                        args.repeat), 100_000)
        report_times = timed(lambda: report.write(out / "r.html", result.metrics, result.trips, result.equity,
                                                  result.capital), args.repeat)
        print(f"report.html alone: {min(report_times):.3f} s best")
        cmd = [sys.executable, "-m", "bosun.apps.backtest_cli", "--data", str(btc), "--out", str(out / "cli"),
               "--strategy", "sma_cross", "--param", "fast=10", "--param", "slow=30", "--qty", "0.01"]
        walls = timed(lambda: subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True), args.repeat)
        print(f"whole command, interpreter start + report included: {min(walls):.3f} s best / "
              f"{statistics.median(walls):.3f} s median\n  {' '.join(cmd[1:])}")

        for path, interval in ((btc_trades, "5s"), (xrp_trades, "1m")):
            n = trades_in(path)
            res = one_run([path], out / "trades", interval)
            show(f"\ntrades -> {interval} bars -> outputs, {path.name} ({res.bars:,} bars)", n, "trades",
                 timed(lambda: one_run([path], out / "trades", interval), args.repeat), 300_000)

        for bars in (10_000, 50_000):
            part = out / f"BTCUSDT_{bars}.csv"
            with gzip.open(btc, "rt") as f, part.open("w") as dst:
                dst.writelines(itertools.islice(f, bars + 1))
            tracemalloc.start()
            res = one_run([part], out / "mem")
            current, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            print(f"{'' if bars > 10_000 else chr(10)}memory, {bars:,} bars: peak {peak / 1e6:.1f} MB, "
                  f"retained {current / 1e6:.1f} MB "
                  f"({len(res.equity):,} equity marks, {len(res.fills):,} fills, {len(res.trips):,} round trips)")
        if args.profile:
            profile(btc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
