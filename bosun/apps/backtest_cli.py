"""`bosun backtest`: argument parsing and the run from files to the output directory.

Mounted into the `bosun` CLI with `add_parser(subparsers)` and `main(args)`; also runs on
its own as `python -m bosun.apps.backtest_cli ...`. Bad input (an unreadable or malformed
data file, unsorted or duplicate times, an unknown strategy or parameter, a bad config)
prints one line naming the file and line or the parameter, and exits with 2."""

from __future__ import annotations

import argparse
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path

import msgspec

from bosun.apps.config import Config
from bosun.runtime.config import ConfigError

DESCRIPTION = ("Run strategies over Binance kline or trade files with the live signal, risk, execution and "
               "portfolio actors on a simulated clock; write fills.csv, trades.csv, equity.csv, metrics.json "
               "and report.html.")

# Flags that shape the run when there is no --config (a config file says all of it).
RUN_FLAGS = {"strategy": "--strategy", "params": "--param", "long_only": "--long-only/--long-short",
             "qty": "--qty", "equity_fraction": "--equity-fraction", "capital": "--capital", "fee_bps": "--fee-bps",
             "slippage_bps": "--slippage-bps", "fill": "--fill"}


def _decimal(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value.is_finite():
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def _param(text: str) -> tuple[str, int | float | str]:
    """`name=value`; the value becomes an int or a float when it reads as one."""
    name, sep, raw = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not name=value (e.g. --param fast=10)")
    for kind in (int, float):
        try:
            return name.strip(), kind(raw)
        except ValueError:
            continue
    return name.strip(), raw


def configure(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--data", type=Path, action="append", required=True, metavar="FILE",
                   help="Binance kline or trades CSV (gzip or plain); repeat for more files or symbols; a "
                        "USDⓈ-M funding rate history makes its symbol a perpetual that pays funding")
    p.add_argument("--out", type=Path, required=True, metavar="DIR",
                   help="output directory: fills.csv, trades.csv, equity.csv, metrics.json, report.html")
    p.add_argument("--config", type=Path, help="bosun.toml: clients, sizing, risk, venues and strategies "
                   "(instead of the flags below)")
    g = p.add_argument_group("run without a config file (one client, 'backtest'; no risk limits)")
    g.add_argument("--strategy", help="registered name (sma_cross) or import path package.module:Class "
                   "(default sma_cross)")
    g.add_argument("--param", dest="params", type=_param, action="append", metavar="NAME=VALUE",
                   help="strategy parameter, repeatable: --param fast=10 --param slow=30")
    side = g.add_mutually_exclusive_group()
    side.add_argument("--long-only", dest="long_only", action="store_const", const=True,
                      help="go flat instead of short")
    side.add_argument("--long-short", dest="long_only", action="store_const", const=False,
                      help="go long and short (default)")
    size = g.add_mutually_exclusive_group()
    size.add_argument("--qty", type=_decimal, metavar="Q", help="fixed base quantity per position (default 0.01)")
    size.add_argument("--equity-fraction", type=_decimal, metavar="F",
                      help="position worth F x equity at the signal price")
    g.add_argument("--capital", type=_decimal, metavar="C", help="starting capital, quote currency (default 10000)")
    g.add_argument("--fee-bps", type=_decimal, metavar="B", help="fee, basis points of notional (default 10)")
    g.add_argument("--slippage-bps", type=_decimal, metavar="S",
                   help="adverse slippage applied to the fill price, basis points (default 0)")
    g.add_argument("--fill", choices=("next_open", "close"),
                   help="market orders fill at the next bar's open (default) or this bar's close")
    p.add_argument("--json", action="store_true", help="print metrics.json to stdout")
    return p


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    return configure(subparsers.add_parser(
        "backtest", help="run strategies over kline/trade files with the live actors; write results and a report",
        description=DESCRIPTION))


def main(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except (ConfigError, msgspec.ValidationError, ValueError) as exc:  # DataError, StrategyError included
        print(f"bosun backtest: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"bosun backtest: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    from bosun.apps import backtest, outputs, result_files
    from bosun.apps import config as cfg

    given = [dest for dest in RUN_FLAGS if getattr(args, dest) is not None]
    loaded = cfg.load(args.config) if args.config is not None else None
    if loaded is not None and given:
        raise ValueError(f"--config sets the strategy, sizing and venues: "
                         f"drop {', '.join(RUN_FLAGS[d] for d in given)}")
    # Bars built from trade files use the config's ingest interval (1m without a config).
    markets, bars = backtest.open_data(args.data, loaded.ingest.interval if loaded is not None else "1m")
    if loaded is not None:
        config = backtest.as_backtest(loaded)
    else:
        values = {dest: getattr(args, dest) for dest in given}
        values["params"] = dict(args.params or [])
        config = backtest.config_from_flags(backtest.Flags(**values), markets)
    ticks = backtest.fills_on_ticks(config) and backtest.holds_ticks(args.data)
    if ticks:  # the book model fills on the trades and quotes themselves
        bars = backtest.open_ticks(args.data, loaded.ingest.interval if loaded is not None else "1m")
    result = backtest.run(config, bars, ticks, backtest.open_funding(args.data, markets))
    if not result.bars:
        raise ValueError("the data files hold no bars")
    result_files.write(args.out, result.fills, result.trips, result.equity, result.metrics, result.capital,
                       _title(config))
    if args.json:
        sys.stdout.buffer.write(outputs.metrics_json(result.metrics))
    else:
        m = result.metrics
        print(f"{result.bars:,} bars, {m['num_trades']:,} round trips, total pnl {m['total_pnl']:.2f} "
              f"({m['total_return_pct']:.2f}%), max drawdown {m['max_drawdown_pct']:.2f}%; wrote {args.out}/")
    return 0


def _title(config: Config) -> str:
    parts = [f"{s.kind} {' '.join(f'{k}={v}' for k, v in s.params.items())} on {s.symbol}"
             + (" (long only)" if s.long_only else "") for s in config.strategies]
    return "bosun backtest: " + "; ".join(parts)


def build_parser() -> argparse.ArgumentParser:
    return configure(argparse.ArgumentParser(prog="bosun backtest", description=DESCRIPTION))


if __name__ == "__main__":
    sys.exit(main(build_parser().parse_args()))
