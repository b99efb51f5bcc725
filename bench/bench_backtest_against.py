"""This tree's backtest against another checkout's, run for run, on a machine shared with others.

    git worktree add /tmp/base 0beb0bc
    python bench/bench_backtest_against.py /tmp/base [--pairs 12] [--rounds 6] [--what run|file] [--collect]

Each tree runs in a process of its own (same interpreter, bars already read), and the two are
asked for one run at a time, in turn, so a neighbour's load falls on both alike. `run`: the
actors over 50,000 real BTCUSDT 1m bars in memory (sma_cross 10/30, long/short, 0.01); `file`:
the same from the gz file to fills/trades/equity/metrics. A process's speed depends on more than
its code (where its heap and hash seeds fell: a tree against a copy of itself gave -1.5 % to
+5.2 % over four single pairs of processes), so `--pairs` pairs of fresh processes each do
`--rounds` rounds; the figure is the median over the pairs of each pair's median ratio (this tree
/ the other, the same round). Prints each tree's best and median too.

A run that leaves cyclic garbage makes a later one pay for collecting it (0beb0bc's run leaves its
actors and bus, ~10,000 objects at 50,000 bars, and the next run's generation-2 collection takes
~12 ms), wherever its collection falls. The default charges each tree that as it falls, as a sweep
in one process would; with `--collect` each timed run ends with a full collection, so every run
pays once for freeing what it built, by reference counts or by the collector."""

from __future__ import annotations

import argparse
import gc
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def serve(tree: Path, collect: bool) -> None:
    """The worker: load `tree`'s code, then one run per line read, printing its seconds."""
    sys.path.insert(0, str(tree))
    from bosun.apps import backtest, outputs
    from tests.datafiles import BTC_1M, data_dir

    path, out = data_dir() / BTC_1M, Path(tempfile.mkdtemp())
    flags = backtest.Flags(params={"fast": 10, "slow": 30}, qty=Decimal("0.01"))
    markets, bars = backtest.open_data([path])
    held = list(bars)
    config = backtest.config_from_flags(flags, markets)

    def from_file() -> None:
        markets, bars = backtest.open_data([path])
        result = backtest.run(backtest.config_from_flags(flags, markets), bars)
        outputs.write_all(out, result.fills, result.trips, result.equity, result.metrics)

    runs = {"run": lambda: backtest.run(config, iter(held)), "file": from_file}
    for fn in runs.values():
        fn()  # warm-up
    print("ready", flush=True)
    for line in sys.stdin:
        start = time.perf_counter()
        runs[line.strip()]()
        if collect:
            gc.collect()
        print(f"{time.perf_counter() - start:.6f}", flush=True)


def _pair(trees: dict[str, Path], rounds: int, what: str, collect: bool) -> dict[str, list[float]] | None:
    """One fresh worker per tree, `rounds` runs each, who goes first alternating; None if one failed to start."""
    workers = {name: subprocess.Popen([sys.executable, __file__, str(trees["other"]), "--serve", str(tree)]
                                      + ["--collect"] * collect,
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
               for name, tree in trees.items()}
    try:
        if any(w.stdout.readline().strip() != "ready" for w in workers.values()):  # type: ignore[union-attr]
            return None
        seconds: dict[str, list[float]] = {name: [] for name in workers}
        for i in range(rounds):
            for name in (list(workers) if i % 2 == 0 else list(workers)[::-1]):
                worker = workers[name]
                worker.stdin.write(what + "\n")  # type: ignore[union-attr]
                worker.stdin.flush()  # type: ignore[union-attr]
                seconds[name].append(float(worker.stdout.readline()))  # type: ignore[union-attr]
        return seconds
    finally:
        for worker in workers.values():
            worker.stdin.close()  # type: ignore[union-attr]
            worker.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("other", type=Path, help="the other checkout (a git worktree of the commit to compare with)")
    parser.add_argument("--pairs", type=int, default=12, help="pairs of fresh worker processes")
    parser.add_argument("--rounds", type=int, default=6, help="runs of each tree per pair, in turn")
    parser.add_argument("--what", choices=("run", "file"), default="run")
    parser.add_argument("--collect", action="store_true", help="end each timed run with gc.collect()")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve, args.collect)
        return 0
    trees = {"other": args.other.resolve(), "this": ROOT}
    seconds: dict[str, list[float]] = {name: [] for name in trees}
    ratios: list[float] = []
    for _ in range(args.pairs):
        paired = _pair(trees, args.rounds, args.what, args.collect)
        if paired is None:
            print("a worker failed to start", file=sys.stderr)
            return 2
        for name, times in paired.items():
            seconds[name] += times
        ratios.append(statistics.median(a / b for a, b in zip(paired["this"], paired["other"])))
    print(f"{args.what}{', each run and a gc.collect()' * args.collect}, {args.pairs} pairs of processes x "
          f"{args.rounds} rounds, {sys.executable} "
          f"(Python {sys.version.split()[0]})")
    for name, tree in trees.items():
        print(f"  {name} ({tree}): best {min(seconds[name]):.4f} s, median {statistics.median(seconds[name]):.4f} s")
    print(f"  this / other: best {min(seconds['this']) / min(seconds['other']) - 1:+.1%}, median over the pairs "
          f"{statistics.median(ratios) - 1:+.1%} (pairs from {min(ratios) - 1:+.1%} to {max(ratios) - 1:+.1%})")
    print(f"  reproduce: python bench/bench_backtest_against.py {trees['other']} --pairs {args.pairs} "
          f"--rounds {args.rounds} --what {args.what}{' --collect' * args.collect}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
