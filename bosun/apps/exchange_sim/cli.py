"""`bosun exchange-sim`: its arguments, and the server started from them (imported only when it runs)."""

from __future__ import annotations

import argparse
import asyncio
from decimal import Decimal, InvalidOperation
from pathlib import Path

from bosun.apps.exchange_sim.config import KEY_ENV, SECRET_ENV, SimConfig
from bosun.runtime.config import ConfigError, secret


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("exchange-sim", help="a spot exchange replaying market data that speaks Binance's and "
                                            "Bybit's APIs on one port, for rehearsing live mode (key and secret "
                                            f"from ${KEY_ENV}, ${SECRET_ENV})")
    p.add_argument("--data", type=Path, action="append", required=True, metavar="FILE",
                   help="a Binance trades, aggTrades or kline file to replay (repeatable, one per symbol)")
    p.add_argument("--port", type=int, required=True, help="port to listen on")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--balance", action="append", default=[], metavar="ASSET=AMOUNT",
                   help="starting balance, e.g. USDT=100000 (repeatable; default USDT=100000)")
    p.add_argument("--speed", type=float, default=1.0,
                   help="replay speed as a multiple of real time; 0 = only POST /sim/advance moves the market")
    p.add_argument("--fee-bps", type=Decimal, default=Decimal(10), help="commission in basis points (default 10)")


def parse_balances(items: list[str]) -> dict[str, Decimal]:
    balances = {}
    for item in items or ["USDT=100000"]:
        asset, _, amount = item.partition("=")
        try:
            value = Decimal(amount)
        except InvalidOperation:
            value = Decimal("NaN")
        if not asset.isalnum() or not asset.isupper() or not value.is_finite() or value < 0:
            raise ConfigError(f"--balance {item!r}: expected ASSET=AMOUNT with an upper-case asset and an amount >= 0, "
                              "e.g. USDT=100000")
        balances[asset] = value
    return balances


def main(args: argparse.Namespace) -> int:
    config = SimConfig(data=tuple(str(p) for p in args.data), balances=parse_balances(args.balance),
                       fee_bps=args.fee_bps, speed=args.speed)
    from bosun.apps.exchange_sim.auth import Credentials
    from bosun.apps.exchange_sim.server import serving

    credentials = Credentials(secret(KEY_ENV), secret(SECRET_ENV))

    async def run() -> None:
        async with serving(config, credentials, args.host, args.port) as sim:
            symbols = ", ".join(sim.exchange.rules)
            ws = f"ws://{sim.url.removeprefix('http://')}"
            print(f"bosun exchange-sim: {symbols} on {sim.url} (Binance: REST {sim.url}/api/v3, user stream "
                  f"{ws}/ws and /ws-api/v3, market streams {ws}/stream; Bybit: REST {sim.url}/v5, private "
                  f"stream {ws}/v5/private; either as a live venue's api_url), speed {config.speed}", flush=True)
            await asyncio.Event().wait()

    asyncio.run(run())
    return 0
