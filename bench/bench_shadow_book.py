"""What the shadow venue's `book` fill model costs a backtest, beside `simple`, in the same run.

    python bench/bench_shadow_book.py [--repeat 5]

`bosun backtest`'s path from files to outputs (as bench_backtest.py times it, report.html apart) on
the real BTCUSDT spot capture (19,904 trades, 11 minutes), sma_cross 5/20 on 5 s bars built from the
trades, 0.05 BTC, entering with resting limit orders 1 bp from the signal's price, good for 30 s
(GTD). Four setups, run in turn, round after round, so a busy machine slows them alike:
- simple: the venue sees the 5 s bars, a limit fills whole on a bar through it (today's rules);
- book on bars: each bar fills at most 10% of its volume;
- book on trades: the trades go through ingest to the venue, which fills each at most its size;
- book on trades + quotes: also the 73,174 bookTicker quotes of the capture; queue position.
Figures: trades/s (the capture's trades over the wall time) and the cost against simple: the
median over the rounds of each round's ratio, and the ratio of the best times.
The data folder is BOSUN_DATA_DIR, else ../shared/data beside the repo."""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(ROOT / "bench"))
from bench_backtest import machine, trades_in  # noqa: E402
from bosun.apps import backtest, outputs  # noqa: E402
from bosun.apps.config import ClientConfig, Config  # noqa: E402
from services.execution.config import VenueConfig  # noqa: E402
from services.ingest.config import IngestConfig  # noqa: E402
from services.risk.config import LimitsConfig  # noqa: E402
from services.signal.config import SizingConfig, StrategyConfig  # noqa: E402
from tests.datafiles import BTC_BOOK_TICKER, BTC_TRADES, data_dir  # noqa: E402

INTERVAL = "5s"


def config(fill_model: str) -> Config:
    venue = VenueConfig(fee_bps=Decimal(10), maker_fee_bps=Decimal(2), fill_model=fill_model,  # type: ignore[arg-type]
                        entry="limit", limit_offset_bps=Decimal(1), limit_ttl_s=Decimal(30))
    strategy = StrategyConfig(name="sma", kind="sma_cross", symbol="BTCUSDT", params={"fast": 5, "slow": 20})
    client = ClientConfig(id="bench", capital=Decimal(10000), strategies=["sma"],
                          sizing=SizingConfig(kind="fixed", qty=Decimal("0.05")),
                          risk=LimitsConfig(max_price_age_s=None), venues={"binance": venue})
    return Config(mode="backtest", clients=[client], strategies=[strategy], ingest=IngestConfig(interval=INTERVAL))


def one_run(paths: list[Path], fill_model: str, ticks: bool, out: Path) -> backtest.Result:
    cfg = config(fill_model)
    events = backtest.open_ticks(paths, INTERVAL) if ticks else backtest.open_data(paths, INTERVAL)[1]
    result = backtest.run(cfg, events, ticks)
    outputs.write_all(out, result.fills, result.trips, result.equity, result.metrics)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    trades, quotes = data_dir() / BTC_TRADES, data_dir() / BTC_BOOK_TICKER
    n = trades_in(trades)
    setups = {
        "simple (bars)": ([trades], "simple", False),
        "book on bars": ([trades], "book", False),
        "book on trades": ([trades], "book", True),
        "book on trades + quotes": ([trades, quotes], "book", True),
    }
    print(machine())
    print(f"python bench/bench_shadow_book.py --repeat {args.repeat}")
    times: dict[str, list[float]] = {name: [] for name in setups}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (paths, model, ticks) in setups.items():  # warm-up, and what each run fills
            result = one_run(paths, model, ticks, Path(tmp) / "warm")
            print(f"  {name}: {len(result.fills)} fills, {len(result.trips)} round trips, "
                  f"total pnl {result.metrics['total_pnl']:.2f}")
        for _ in range(args.repeat):
            for name, (paths, model, ticks) in setups.items():
                start = time.perf_counter()
                one_run(paths, model, ticks, Path(tmp) / "out")
                times[name].append(time.perf_counter() - start)
    base = times["simple (bars)"]
    for name, ts in times.items():
        best, median = min(ts), statistics.median(ts)
        # Within a round the setups ran back to back: the median of those ratios is what a busy
        # machine disturbs least.
        ratio = statistics.median(t / b for t, b in zip(ts, base))
        print(f"{name}: {n:,} trades in {best:.3f} s best / {median:.3f} s median = {n / best:,.0f} / "
              f"{n / median:,.0f} trades/s; {ratio:.2f}x simple's cost (median of the rounds' ratios), "
              f"{best / min(base):.2f}x (bests)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
