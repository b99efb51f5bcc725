"""Hashes of a backtest's outputs (fills.csv, trades.csv, equity.csv, metrics.json) and of risk's
status at the end, over the configurations bench/RESULTS.md's backtest sections list, for checking
that a change keeps every output byte-identical.

    python bench/golden_backtest.py [--tree OTHER_CHECKOUT] > hashes.txt

Configurations: sma_cross 10/30 long/short on the BTCUSDT 1m file; the close fill with 5 bps slippage,
long only; sizing by an equity fraction of 0.5; stop_k/take_k with clamp limits and a per-minute
order cap; the book fill model with submit/cancel latency, jitter and reject limits; the BTCUSDT
trade capture (1m bars); the XRPETH aggTrades; the book model on the trade capture's trades. `--tree`
runs another checkout's code (a worktree of main, say) with this interpreter, to compare."""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def configs() -> dict[str, tuple[list[str], object, bool]]:
    """name -> (data files, config, whether the venue fills on the trades themselves)."""
    from bosun.apps import backtest
    from bosun.apps.config import ClientConfig, Config
    from services.execution.config import VenueConfig
    from services.ingest.config import IngestConfig
    from services.risk.config import LimitsConfig
    from services.signal.config import SizingConfig, StrategyConfig
    from tests.datafiles import BTC_1M, BTC_TRADES, XRPETH_AGGTRADES, data_dir

    btc, trades, xrp = (str(data_dir() / p) for p in (BTC_1M, BTC_TRADES, XRPETH_AGGTRADES))
    sma = {"fast": 10, "slow": 30}

    def flags(paths: list[str], params: dict = sma, **values: object) -> Config:
        markets, _ = backtest.open_data(paths)
        return backtest.config_from_flags(backtest.Flags(params=params, **values), markets)  # type: ignore[arg-type]

    def one(strategy: StrategyConfig, risk: LimitsConfig, venue: VenueConfig, qty: str, interval: str = "1m") -> Config:
        client = ClientConfig(id="golden", capital=Decimal(10000), strategies=[strategy.name],
                              sizing=SizingConfig(kind="fixed", qty=Decimal(qty)), risk=risk,
                              venues={"binance": venue})
        return Config(mode="backtest", clients=[client], strategies=[strategy], ingest=IngestConfig(interval=interval))

    stops = one(StrategyConfig(name="sma", kind="sma_cross", symbol="BTCUSDT", params=sma, stop_k=Decimal(2),
                               take_k=Decimal(3)),
                LimitsConfig(max_price_age_s=None, max_position=Decimal("0.015"), on_breach="clamp",
                             max_orders_per_min=2),
                VenueConfig(), "0.02")
    book = one(StrategyConfig(name="sma", kind="sma_cross", symbol="BTCUSDT", params=sma),
               LimitsConfig(max_price_age_s=None, max_order_notional=Decimal(3000), on_breach="reject",
                            max_orders_per_min=3),
               VenueConfig(fill_model="book", entry="limit", limit_offset_bps=Decimal(1), limit_ttl_s=Decimal(600),
                           submit_latency_ms=Decimal(150), cancel_latency_ms=Decimal(80),
                           latency_jitter_ms=Decimal(40)), "0.02")
    on_trades = one(StrategyConfig(name="sma", kind="sma_cross", symbol="BTCUSDT", params={"fast": 5, "slow": 20}),
                    LimitsConfig(max_price_age_s=None),
                    VenueConfig(fill_model="book", maker_fee_bps=Decimal(2), entry="limit",
                                limit_offset_bps=Decimal(1), limit_ttl_s=Decimal(30), submit_latency_ms=Decimal(50),
                                latency_jitter_ms=Decimal(20)), "0.05", "5s")
    return {
        "sma 10/30 long/short": ([btc], flags([btc], qty=Decimal("0.01")), False),
        "close fill, 5 bps slippage, long only": (
            [btc], flags([btc], qty=Decimal("0.01"), fill="close", slippage_bps=Decimal(5), long_only=True), False),
        "equity fraction 0.5": ([btc], flags([btc], equity_fraction=Decimal("0.5")), False),
        "stop_k/take_k, clamp limits, per-minute cap": ([btc], stops, False),
        "book model, latencies, reject limits": ([btc], book, False),
        "BTCUSDT trade capture": ([trades], flags([trades], {"fast": 2, "slow": 5}, qty=Decimal("0.01")), False),
        "XRPETH aggTrades": ([xrp], flags([xrp], {"fast": 5, "slow": 20}, qty=Decimal("100")), False),
        "book model on the trade capture": ([trades], on_trades, True),
    }


def digest(paths: list[str], config: object, ticks: bool) -> tuple[str, int]:
    from bosun.apps import backtest, outputs

    interval = config.ingest.interval  # type: ignore[attr-defined]
    events = backtest.open_ticks(paths, interval) if ticks else backtest.open_data(paths, interval)[1]
    result = backtest.run(config, events, ticks)  # type: ignore[arg-type]
    h = hashlib.sha256()
    with tempfile.TemporaryDirectory() as tmp:
        outputs.write_all(Path(tmp), result.fills, result.trips, result.equity, result.metrics)
        for name in ("fills.csv", "trades.csv", "equity.csv", "metrics.json"):
            h.update((Path(tmp) / name).read_bytes())
    h.update(repr(result.risk).encode())
    return h.hexdigest()[:16], len(result.fills)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", type=Path, default=ROOT, help="the checkout whose code runs (default: this one)")
    args = parser.parse_args()
    sys.path.insert(0, str(args.tree.resolve()))
    for name, (paths, config, ticks) in configs().items():
        hexdigest, fills = digest(paths, config, ticks)
        print(f"{hexdigest}  {fills:6d} fills  {name}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
