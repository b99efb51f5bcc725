"""What the analytics cost a backtest: the per-group metrics and execution quality computed after
the run (no work per bar), and report.html with its charts.

    python bench/bench_analytics.py [--repeat 7] [--baseline DIR]

On the 50,000 real BTCUSDT 1m bars of bench_backtest (sma_cross 10/30, fixed qty):
1. In this tree: backtest.run() in full, and apart the analytics' two steps on that run's order
   log (OrderJournal.feed, analytics.compute), and report.html with its charts.
2. With --baseline DIR (another checkout, e.g. `git worktree add /tmp/main main`): file to
   outputs (fills/trades/equity/metrics, as bench_backtest's "file -> outputs") and report.html,
   each tree in its own subprocess, the two trees alternating, best and median of --repeat rounds:
   on a shared machine only such alternating figures compare.
The data folder is BOSUN_DATA_DIR, else ../shared/data beside the repo."""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.datafiles import BTC_1M, data_dir  # noqa: E402

# Runs in each tree's subprocess: the tree first on sys.path, then file -> outputs and report.html, timed.
ROUND = """
import json, sys, tempfile, time
from decimal import Decimal
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from bosun.apps import backtest, outputs, report
start = time.perf_counter()
markets, bars = backtest.open_data([Path(sys.argv[2])])
config = backtest.config_from_flags(backtest.Flags(params={"fast": 10, "slow": 30}, qty=Decimal("0.01")), markets)
result = backtest.run(config, bars)
with tempfile.TemporaryDirectory() as out:
    outputs.write_all(Path(out), result.fills, result.trips, result.equity, result.metrics)
    outputs_s = time.perf_counter() - start
    start = time.perf_counter()
    try:
        report.write(Path(out) / "r.html", result.metrics, result.trips, result.equity, result.capital,
                     fills=result.fills)
    except TypeError:  # a tree whose report takes no fills
        report.write(Path(out) / "r.html", result.metrics, result.trips, result.equity, result.capital)
    print(json.dumps({"outputs": outputs_s, "report": time.perf_counter() - start}))
"""


def in_tree(repeat: int, data: Path) -> None:
    from decimal import Decimal

    from bosun.apps import backtest, report
    from services.portfolio import analytics
    from services.portfolio.execution_quality import OrderJournal

    markets, bars = backtest.open_data([data])
    held = list(bars)
    config = backtest.config_from_flags(backtest.Flags(params={"fast": 10, "slow": 30}, qty=Decimal("0.01")),
                                        markets)
    captured: dict[str, list] = {}
    feed = OrderJournal.feed

    def capture(self: OrderJournal, events: list) -> OrderJournal:
        captured["events"] = list(events)
        return feed(self, captured["events"])

    OrderJournal.feed = capture  # type: ignore[method-assign]
    result = backtest.run(config, iter(held))
    OrderJournal.feed = feed  # type: ignore[method-assign]
    events = captured["events"]
    runs, feeds, computes, reports = [], [], [], []
    out = Path("/tmp") / f"bench_analytics_{time.monotonic_ns()}.html"
    for _ in range(repeat):
        start = time.perf_counter()
        backtest.run(config, iter(held))
        runs.append(time.perf_counter() - start)
        start = time.perf_counter()
        journal = OrderJournal().feed(events)
        feeds.append(time.perf_counter() - start)
        start = time.perf_counter()
        analytics.compute(result.trips, journal, result.metrics)
        computes.append(time.perf_counter() - start)
        start = time.perf_counter()
        report.write(out, result.metrics, result.trips, result.equity, result.capital, fills=result.fills)
        reports.append(time.perf_counter() - start)
    out.unlink(missing_ok=True)
    print(f"{len(held):,} bars, {len(result.trips):,} round trips, {len(events):,} order-log events")
    for label, times in (("backtest.run(), bars in memory, analytics included", runs),
                         ("  of it: OrderJournal.feed", feeds), ("  of it: analytics.compute", computes),
                         ("report.html with its charts", reports)):
        print(f"{label:55s} {min(times) * 1e3:8.1f} ms best / {statistics.median(times) * 1e3:8.1f} ms median")
    share = [(f + c) / r for f, c, r in zip(feeds, computes, runs)]
    print(f"analytics share of run(): {min(share) * 100:.1f}% best / {statistics.median(share) * 100:.1f}% median")


def against(baseline: Path, repeat: int, data: Path) -> None:
    trees = {"this tree": ROOT, f"baseline {baseline}": baseline}
    times: dict[str, dict[str, list[float]]] = {name: {"outputs": [], "report": []} for name in trees}
    for n in range(repeat + 1):  # the first round warms the file cache: not counted
        for name, tree in trees.items():
            done = subprocess.run([sys.executable, "-c", ROUND, str(tree), str(data)], capture_output=True,
                                  text=True, check=True)
            if n:
                for key, value in json.loads(done.stdout).items():
                    times[name][key].append(value)
    for name, by_step in times.items():
        for step, values in by_step.items():
            label = "file -> outputs" if step == "outputs" else "report.html"
            print(f"{name:40s} {label:16s} {min(values):.3f} s best / {statistics.median(values):.3f} s median")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--baseline", type=Path, help="another checkout to compare with, alternating")
    args = parser.parse_args()
    data = data_dir() / BTC_1M
    if not data.exists():
        print(f"missing {data}: set BOSUN_DATA_DIR to the shared data folder", file=sys.stderr)
        return 2
    print(f"python bench/bench_analytics.py --repeat {args.repeat}"
          + (f" --baseline {args.baseline}" if args.baseline else ""))
    in_tree(args.repeat, data)
    if args.baseline is not None:
        against(args.baseline, args.repeat, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
