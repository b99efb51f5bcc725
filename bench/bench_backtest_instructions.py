"""Instructions (callgrind Ir) of one backtest run(), for this tree and others: deterministic whatever
the machine's load, so a change of a few percent shows where wall time cannot.

    python bench/bench_backtest_instructions.py [OTHER_TREE ...] [--bars 20000] [--fast 10 --slow 30]

Per tree, two processes under `valgrind --tool=callgrind` (PYTHONHASHSEED=0): one reads the first
`--bars` BTCUSDT 1m bars into memory and stops (R=0), the other does the same, then one run() of
sma_cross fast/slow, long/short, 0.01 over them (R=1), with the analytics after it; the figure is
the difference, so imports and reading the file fall out. `--fast 30000 --slow 40000` gives no
signal: the per-bar path alone. Needs valgrind."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def work(tree: Path, runs: int, bars: int, fast: int, slow: int) -> None:
    """The measured process: `runs` (0 or 1) run() over the first `bars` bars of `tree`'s code."""
    sys.path.insert(0, str(tree))
    from itertools import islice

    from bosun.apps import backtest
    from tests.datafiles import BTC_1M, data_dir

    markets, stream = backtest.open_data([data_dir() / BTC_1M])
    held = list(islice(stream, bars))
    config = backtest.config_from_flags(backtest.Flags(params={"fast": fast, "slow": slow}, qty=Decimal("0.01")),
                                        markets)
    for _ in range(runs):
        result = backtest.run(config, iter(held))
        print(f"{len(result.fills)} fills", file=sys.stderr)


def instructions(tree: Path, runs: int, args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, __file__,
                        "--work", str(tree), str(runs), "--bars", str(args.bars), "--fast", str(args.fast),
                        "--slow", str(args.slow)], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       env={**os.environ, "PYTHONHASHSEED": "0"})
        text = out.read_text(errors="replace")
    match = re.search(r"^(?:summary|totals): (\d+)", text, re.MULTILINE)
    if match is None:
        raise SystemExit(f"no total in callgrind's output for {tree}")
    return int(match.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("others", nargs="*", type=Path, help="other checkouts to measure beside this one")
    parser.add_argument("--bars", type=int, default=20_000)
    parser.add_argument("--fast", type=int, default=10)
    parser.add_argument("--slow", type=int, default=30)
    parser.add_argument("--work", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.work is not None:
        work(Path(args.work[0]), int(args.work[1]), args.bars, args.fast, args.slow)
        return 0
    trees = [t.resolve() for t in args.others] + [ROOT]
    print(f"callgrind Ir of one run() over {args.bars:,} BTCUSDT 1m bars, sma_cross {args.fast}/{args.slow}, "
          f"R=1 minus R=0, PYTHONHASHSEED=0, Python {sys.version.split()[0]}")
    base = None
    for tree in trees:
        ir = instructions(tree, 1, args) - instructions(tree, 0, args)
        versus = f"  {ir / base - 1:+.1%} vs the first" if base else ""
        base = base or ir
        print(f"  {tree}: {ir / 1e6:,.1f} M{versus}", flush=True)
    others = " ".join(str(t) for t in args.others)
    print(f"  reproduce: python bench/bench_backtest_instructions.py {others} --bars {args.bars} "
          f"--fast {args.fast} --slow {args.slow}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
