"""This tree's backtest against another checkout's, run for run, on a machine shared with others.

    git worktree add /tmp/base 0beb0bc
    python bench/bench_backtest_against.py /tmp/base [--rounds 40] [--what run|file]

Each tree runs in a process of its own (same interpreter, bars already read), and the two are
asked for one run at a time, in turn, so a neighbour's load falls on both alike. `run`: the
actors over 50,000 real BTCUSDT 1m bars in memory (sma_cross 10/30, long/short, 0.01); `file`:
the same from the gz file to fills/trades/equity/metrics. Prints each tree's best and median
and the median of the paired ratios (this tree / the other, the same round)."""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def serve(tree: Path) -> None:
    """The worker: load `tree`'s code, then one run per line read, printing its seconds."""
    sys.path.insert(0, str(tree))
    from bosun.apps import backtest, outputs
    from tests.datafiles import BTC_1M, data_dir

    path, out = data_dir() / BTC_1M, Path(tempfile.mkdtemp())
    markets, bars = backtest.open_data([path])
    held = list(bars)
    config = backtest.config_from_flags(backtest.Flags(params={"fast": 10, "slow": 30}, qty=Decimal("0.01")), markets)

    def from_file() -> None:
        markets, bars = backtest.open_data([path])
        result = backtest.run(backtest.config_from_flags(backtest.Flags(params={"fast": 10, "slow": 30},
                                                                        qty=Decimal("0.01")), markets), bars)
        outputs.write_all(out, result.fills, result.trips, result.equity, result.metrics)

    runs = {"run": lambda: backtest.run(config, iter(held)), "file": from_file}
    for fn in runs.values():
        fn()  # warm-up
    print("ready", flush=True)
    for line in sys.stdin:
        start = time.perf_counter()
        runs[line.strip()]()
        print(f"{time.perf_counter() - start:.6f}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("other", type=Path, help="the other checkout (a git worktree of the commit to compare with)")
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--what", choices=("run", "file"), default="run")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve)
        return 0
    trees = {"other": args.other.resolve(), "this": ROOT}
    workers = {name: subprocess.Popen([sys.executable, __file__, str(trees["other"]), "--serve", str(tree)],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
               for name, tree in trees.items()}
    for worker in workers.values():
        if worker.stdout.readline().strip() != "ready":  # type: ignore[union-attr]
            print("a worker failed to start", file=sys.stderr)
            return 2
    seconds: dict[str, list[float]] = {name: [] for name in workers}
    for i in range(args.rounds):
        for name in (list(workers) if i % 2 == 0 else list(workers)[::-1]):  # who goes first alternates
            worker = workers[name]
            worker.stdin.write(args.what + "\n")  # type: ignore[union-attr]
            worker.stdin.flush()  # type: ignore[union-attr]
            seconds[name].append(float(worker.stdout.readline()))  # type: ignore[union-attr]
    for worker in workers.values():
        worker.stdin.close()  # type: ignore[union-attr]
        worker.wait()
    print(f"{args.what}, {args.rounds} rounds, {sys.executable} (Python {sys.version.split()[0]})")
    for name, tree in trees.items():
        print(f"  {name} ({tree}): best {min(seconds[name]):.4f} s, median {statistics.median(seconds[name]):.4f} s")
    paired = statistics.median(a / b for a, b in zip(seconds["this"], seconds["other"]))
    print(f"  this / other: best {min(seconds['this']) / min(seconds['other']) - 1:+.1%}, "
          f"median of paired ratios {paired - 1:+.1%}")
    print(f"  reproduce: python bench/bench_backtest_against.py {trees['other']} --rounds {args.rounds} "
          f"--what {args.what}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
