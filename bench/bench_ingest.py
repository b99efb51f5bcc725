"""How fast ingest turns real Binance files into events: klines -> Bars, trades -> Trades,
and trades -> 1m Bars (read + aggregate). Prints best and median of --repeat runs.

    /tmp/venv/bin/python bench/bench_ingest.py [--repeat 7]

Targets: >= 400k bars/s and >= 500k trades/s read, >= 300k trades/s read + aggregated.
The data folder is BOSUN_DATA_DIR, else ../shared/data beside the repo."""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from services.ingest.bars import bars_from_trades  # noqa: E402
from services.ingest.files import read_klines, read_trades  # noqa: E402
from tests.datafiles import BTC_1M, BTC_TRADES, LINK_USDM_12COL, XRPETH_AGGTRADES, data_dir  # noqa: E402


def _rate(run: Callable[[], Iterable[object]], units: Callable[[], Iterable[object]],
          repeat: int) -> tuple[int, float, float]:
    """(units per run, best rate, median rate) over `repeat` timed runs after one warm-up."""
    n = sum(1 for _ in units())
    rates = []
    for _ in range(repeat + 1):
        start = time.perf_counter()
        for _ in run():
            pass
        rates.append(n / (time.perf_counter() - start))
    rates = rates[1:]
    return n, max(rates), statistics.median(rates)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    data = data_dir()
    btc, link = data / BTC_1M, data / LINK_USDM_12COL
    btc_trades, xrp_trades = data / BTC_TRADES, data / XRPETH_AGGTRADES
    for path in (btc, link, btc_trades, xrp_trades):
        if not path.exists():
            print(f"missing {path}: set BOSUN_DATA_DIR to the shared data folder", file=sys.stderr)
            return 2

    # (label, unit, what to run, what to count as its units, target rate)
    cases = [
        ("read_klines BTCUSDT 1m (6 col, gz)", "bars", lambda: read_klines(btc), None, 400_000),
        ("read_klines LINKUSDT 1m (12 col, gz)", "bars", lambda: read_klines(link), None, 400_000),
        ("read_trades BTCUSDT capture (gz)", "trades", lambda: read_trades(btc_trades), None, 500_000),
        ("read_trades XRPETH aggTrades (gz)", "trades", lambda: read_trades(xrp_trades), None, 500_000),
        ("read_trades+bars_from_trades BTCUSDT", "trades", lambda: bars_from_trades(read_trades(btc_trades)),
         lambda: read_trades(btc_trades), 300_000),
        ("read_trades+bars_from_trades XRPETH", "trades", lambda: bars_from_trades(read_trades(xrp_trades)),
         lambda: read_trades(xrp_trades), 300_000),
    ]
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cpus, "
          f"load average {os.getloadavg()[0]:.2f}; best and median of {args.repeat} runs")
    for label, unit, make, units, target in cases:
        n, best, median = _rate(make, units or make, args.repeat)
        verdict = "ok" if best >= target else f"below the {target:,} target"
        print(f"{label:38s} {n:7,} {unit:6s} best {best:9,.0f}/s  median {median:9,.0f}/s  {verdict}")
    print(f"reproduce: {sys.executable} bench/bench_ingest.py --repeat {args.repeat}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
