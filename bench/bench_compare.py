"""bosun against nautilus_trader and backtrader: same data, same strategy, same machine, one run.

    pip install -e '.[bench]' && python bench/bench_compare.py [--repeat 3] [--bars 50000]

The strategy everywhere: SMA cross of closes, fast 10 / slow 30, long/short, 0.01 BTC,
market orders at the next bar's open, 10 bps fees, on the real BTCUSDT 1m file
(tests.datafiles.BTC_1M). Each framework runs in its own subprocess (a worker of this
script), so each gets a fresh interpreter; the time is measured inside the worker from
reading the gzip CSV to the end of the run ("load" = file to the framework's bar objects,
"run" = the event loop; bosun's run also writes fills/trades/equity/metrics files, the
others write nothing). Best of --repeat runs.

The `bench` extra installs nautilus_trader<1.222 and backtrader beside bosun; a framework
that is not installed is skipped with the reason."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FAST, SLOW, QTY, FEE = 10, 30, 0.01, 0.001
SKIP = 3  # worker exit code: framework not installed


def _frame(path: Path, bars: int):  # noqa: ANN202  (pandas DataFrame)
    import pandas as pd

    df = pd.read_csv(path, nrows=bars)
    df.index = pd.to_datetime(df["open_time"], unit="ms", utc=True)
    return df[["open", "high", "low", "close", "volume"]]


# ----------------------------------------------------------------------------- workers


def work_bosun(path: Path, bars: int) -> dict[str, object]:
    import itertools
    import tempfile
    from decimal import Decimal

    sys.path.insert(0, str(ROOT))
    from bosun.apps import backtest, outputs

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        markets, stream = backtest.open_data([path])
        config = backtest.config_from_flags(backtest.Flags(params={"fast": FAST, "slow": SLOW}, qty=Decimal("0.01"),
                                                           fee_bps=Decimal(10)), markets)
        result = backtest.run(config, itertools.islice(stream, bars))
        outputs.write_all(Path(tmp) / "out", result.fills, result.trips, result.equity, result.metrics)
        total = time.perf_counter() - start
    # bosun streams: reading is interleaved with the run and not timed apart
    return {"bars": result.bars, "orders": len(result.fills), "load_s": None, "run_s": total, "total_s": total}


def work_backtrader(path: Path, bars: int) -> dict[str, object]:
    import backtrader as bt

    class SmaCross(bt.Strategy):
        def __init__(self) -> None:
            self.fast = bt.indicators.SMA(self.data.close, period=FAST)
            self.slow = bt.indicators.SMA(self.data.close, period=SLOW)
            self.direction = 0
            self.orders = 0

        def next(self) -> None:
            f, s = self.fast[0], self.slow[0]
            d = 1 if f > s else -1 if f < s else self.direction
            if d != self.direction:
                self.order_target_size(target=d * QTY)  # market, fills at the next open
                self.direction = d
                self.orders += 1

    start = time.perf_counter()
    feed = bt.feeds.PandasData(dataname=_frame(path, bars))
    loaded = time.perf_counter()
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.broker.setcash(10_000.0)
    cerebro.broker.setcommission(commission=FEE)
    cerebro.adddata(feed)
    cerebro.addstrategy(SmaCross)
    strategy = cerebro.run()[0]
    end = time.perf_counter()
    return {"bars": len(feed), "orders": strategy.orders, "load_s": loaded - start, "run_s": end - loaded,
            "total_s": end - start}


def work_nautilus(path: Path, bars: int) -> dict[str, object]:
    from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
    from nautilus_trader.config import LoggingConfig, StrategyConfig
    from nautilus_trader.indicators import SimpleMovingAverage
    from nautilus_trader.model.currencies import USDT
    from nautilus_trader.model.data import Bar, BarType
    from nautilus_trader.model.enums import AccountType, OmsType, OrderSide
    from nautilus_trader.model.identifiers import TraderId, Venue
    from nautilus_trader.model.objects import Money
    from nautilus_trader.persistence.wranglers import BarDataWrangler
    from nautilus_trader.test_kit.providers import TestInstrumentProvider
    from nautilus_trader.trading.strategy import Strategy

    class SmaConfig(StrategyConfig, frozen=True):
        bar_type: str

    class SmaCross(Strategy):
        def __init__(self, config: SmaConfig) -> None:
            super().__init__(config)
            self.bar_type = BarType.from_str(config.bar_type)
            self.fast = SimpleMovingAverage(FAST)
            self.slow = SimpleMovingAverage(SLOW)
            self.direction = 0
            self.orders = 0

        def on_start(self) -> None:
            instrument = self.cache.instrument(self.bar_type.instrument_id)
            self.one = instrument.make_qty(QTY)
            self.two = instrument.make_qty(2 * QTY)
            self.register_indicator_for_bars(self.bar_type, self.fast)
            self.register_indicator_for_bars(self.bar_type, self.slow)
            self.subscribe_bars(self.bar_type)

        def on_bar(self, bar: Bar) -> None:
            if not self.slow.initialized:
                return
            f, s = self.fast.value, self.slow.value
            d = 1 if f > s else -1 if f < s else self.direction
            if d == self.direction:
                return
            qty = self.one if self.direction == 0 else self.two
            self.submit_order(self.order_factory.market(self.bar_type.instrument_id,
                                                        OrderSide.BUY if d > 0 else OrderSide.SELL, qty))
            self.direction = d
            self.orders += 1

    instrument = TestInstrumentProvider.btcusdt_binance()  # taker fee 0.001: 10 bps
    bar_type = BarType.from_str(f"{instrument.id}-1-MINUTE-LAST-EXTERNAL")
    start = time.perf_counter()
    df = _frame(path, bars)
    df.index = df.index + __import__("pandas").Timedelta(minutes=1)  # nautilus stamps bars at their close
    data = BarDataWrangler(bar_type, instrument).process(df)
    loaded = time.perf_counter()
    engine = BacktestEngine(BacktestEngineConfig(trader_id=TraderId("BENCH-001"),
                                                 logging=LoggingConfig(bypass_logging=True)))
    engine.add_venue(venue=Venue("BINANCE"), oms_type=OmsType.NETTING, account_type=AccountType.MARGIN,
                     base_currency=USDT, starting_balances=[Money(1_000_000, USDT)])
    engine.add_instrument(instrument)
    engine.add_data(data)
    strategy = SmaCross(SmaConfig(bar_type=str(bar_type)))
    engine.add_strategy(strategy)
    engine.run()
    end = time.perf_counter()
    fills = len(engine.cache.orders_closed())
    engine.dispose()
    return {"bars": len(data), "orders": fills, "load_s": loaded - start, "run_s": end - loaded,
            "total_s": end - start}


WORKERS = {"bosun": work_bosun, "nautilus_trader": work_nautilus, "backtrader": work_backtrader}
MODULES = {"bosun": "msgspec", "nautilus_trader": "nautilus_trader", "backtrader": "backtrader"}


def worker(name: str, path: Path, bars: int) -> int:
    try:
        __import__(MODULES[name])
    except ImportError as exc:
        print(json.dumps({"skipped": f"{name} is not installed in {sys.executable}: {exc}"}))
        return SKIP
    print(json.dumps(WORKERS[name](path, bars)))
    return 0


# ----------------------------------------------------------------------------- harness


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--bars", type=int, default=50_000)
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--path", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args.path, args.bars)
    sys.path.insert(0, str(ROOT))
    from tests.datafiles import BTC_1M, data_dir

    path = data_dir() / BTC_1M
    if not path.exists():
        print(f"missing {path}: set BOSUN_DATA_DIR to the shared data folder", file=sys.stderr)
        return 2

    results: dict[str, dict[str, object]] = {}
    for name in WORKERS:
        best: dict[str, object] | None = None
        for _ in range(args.repeat):
            cmd = [sys.executable, __file__, "--worker", name, "--path", str(path), "--bars", str(args.bars)]
            done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1800)
            if done.returncode == SKIP:
                print(f"{name}: skipped: {json.loads(done.stdout)['skipped']}")
                break
            if done.returncode != 0:
                print(f"{name}: failed (exit {done.returncode}): {done.stderr.strip().splitlines()[-1:]}")
                break
            run = json.loads(done.stdout.strip().splitlines()[-1])
            if best is None or run["total_s"] < best["total_s"]:  # type: ignore[operator]
                best = run
        if best is not None:
            results[name] = best

    print(f"\nsma_cross {FAST}/{SLOW} long/short, {args.bars:,} real BTCUSDT 1m bars, best of {args.repeat}")
    print(f"{'framework':16s} {'bars':>7s} {'orders':>7s} {'load s':>8s} {'run s':>8s} {'total s':>8s} "
          f"{'bars/s':>9s} {'bosun is':>12s}")
    base = results.get("bosun")
    for name, r in results.items():
        load = "-" if r["load_s"] is None else f"{r['load_s']:.3f}"
        ratio = f"{r['total_s'] / base['total_s']:.2f}x faster" if base and name != "bosun" else ""  # type: ignore
        print(f"{name:16s} {r['bars']:7,} {r['orders']:7,} {load:>8s} {r['run_s']:8.3f} {r['total_s']:8.3f} "
              f"{r['bars'] / r['total_s']:9,.0f} {ratio:>12s}")
    print("(ratio = that framework's total time / bosun's total time; > 1 means bosun is faster)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
