"""Submit to acknowledgement through ccxt against the exchange simulator on loopback: the live
edge's `place` (a SubmitOrder in, the exchange's OrderAccepted out), p50 / p99, and where the
time goes.

    python bench/bench_submit_ack.py [--orders 1000] [--spacing-ms 60] [--exchange binance|bybit]

The simulator (`bosun exchange-sim`'s server, on real BTCUSDT trades) runs in this process on
the same event loop as the client, so its work and the client's add up as they would on one
core. --exchange picks the simulator's dialect and ccxt's exchange (Binance's /api/v3 or Bybit's
/v5, one engine). Each order is a market order of 0.001 BTC, buys and sells in turn; one is sent every
--spacing-ms, longer than ccxt's own limiter for Binance (50 ms a request), so that the figure
is the round trip, not the limiter's queue. ccxt's limiter (`enableRateLimit`, on in bosun) is
timed apart: orders go in blocks of 50 with it on and off in turn, in the same run. Per order:
- total: `CcxtEdge.place`, the order in to OrderAccepted out;
- bosun: total minus ccxt's `create_order` (rounding to the market rules, the pacing check,
  building the answer);
- ccxt: `create_order` minus its HTTP `fetch` (ccxt's own work: parameters, signing, URL and
  body encoding, parsing the JSON answer into its order structure, its limiter);
- http: `fetch` minus the simulator's handler (aiohttp client and server, loopback);
- simulator: from the request reaching the simulator's route to its answer (matching included)."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bosun.apps.exchange_sim.auth import Credentials  # noqa: E402
from bosun.apps.exchange_sim.server import serving  # noqa: E402
from proto.events import OrderAccepted, SubmitOrder  # noqa: E402
from services.execution.config import ExecutionConfig, VenueConfig  # noqa: E402
from services.execution.venues.ccxt_edge import CcxtEdge  # noqa: E402
from tests.datafiles import BTC_TRADES, data_dir  # noqa: E402
from tests.simhelp import API_KEY, API_SECRET, sim_config  # noqa: E402

ENV = {"BOSUN_BINANCE_API_KEY": API_KEY, "BOSUN_BINANCE_API_SECRET": API_SECRET,
       "BOSUN_BYBIT_API_KEY": API_KEY, "BOSUN_BYBIT_API_SECRET": API_SECRET}
ORDER_POST = {"binance": "/api/v3/order", "bybit": "/v5/order/create"}
WARM_UP = 20


def timed(call: Callable[..., Any], into: list[float]) -> Callable[..., Any]:
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return await call(*args, **kwargs)
        finally:
            into.append(time.perf_counter() - start)
    return wrapper


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


BLOCK = 50  # orders in a row with ccxt's limiter on, then as many with it off, and so on
PARTS = ("total", "bosun", "ccxt", "http", "simulator")


async def run(orders: int, spacing_s: float, exchange_id: str) -> dict[bool, dict[str, list[float]]]:
    config = sim_config(str(data_dir() / BTC_TRADES), USDT="1000000", BTC="10")
    async with serving(config, Credentials(API_KEY, API_SECRET)) as sim:
        venue = VenueConfig(kind="live", exchange=exchange_id, api_url=sim.url, order_budget=100_000,
                            order_budget_window_s=1.0, min_replace_interval_s=0.0)
        edge = CcxtEdge(ExecutionConfig(venues={"bench": {exchange_id: venue}}), environ=ENV)
        exchange = edge.accounts[("bench", exchange_id)].exchange
        fetches: list[float] = []
        creates: list[float] = []
        exchange.fetch = timed(exchange.fetch, fetches)
        exchange.create_order = timed(exchange.create_order, creates)
        await exchange.load_markets()
        parts: dict[bool, dict[str, list[float]]] = {on: {k: [] for k in PARTS} for on in (True, False)}
        try:
            for n in range(WARM_UP + 2 * orders):
                limiter = exchange.enableRateLimit = (n // BLOCK) % 2 == 0
                order = SubmitOrder(id=f"bench-{n}-{time.time_ns() % 10**9}", ts_event=time.time_ns(), client="bench",
                                    venue=exchange_id, symbol="BTCUSDT", side="buy" if n % 2 == 0 else "sell",
                                    qty=Decimal("0.001"), order_type="market", target_id=f"t{n}")
                fetches.clear()
                creates.clear()
                start = time.perf_counter()
                [answer] = await edge.place(order)
                total = time.perf_counter() - start
                assert isinstance(answer, OrderAccepted), answer
                served = sim.rest.requests[-1]
                if n >= WARM_UP:  # (warming up, ccxt's bybit also asks what kind of account it is)
                    assert (served.method, served.path, len(fetches), len(creates)) == (
                        "POST", ORDER_POST[exchange_id], 1, 1)
                    these = parts[limiter]
                    these["total"].append(total)
                    these["bosun"].append(total - creates[0])
                    these["ccxt"].append(creates[0] - fetches[0])
                    these["http"].append(fetches[0] - served.handler_s)
                    these["simulator"].append(served.handler_s)
                await asyncio.sleep(max(0.0, spacing_s - total))
        finally:
            await edge.close()
    return parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=1000, help="orders timed with ccxt's limiter on, and as many off")
    parser.add_argument("--spacing-ms", type=float, default=60.0)
    parser.add_argument("--exchange", choices=sorted(ORDER_POST), default="binance")
    args = parser.parse_args()
    import uvloop

    by_limiter = uvloop.run(run(args.orders, args.spacing_ms / 1000, args.exchange))
    print(f"submit to acknowledgement through ccxt's {args.exchange}: market orders, one every {args.spacing_ms:g} ms, "
          f"{len(by_limiter[True]['total'])} with ccxt's limiter on and {len(by_limiter[False]['total'])} off")
    for limiter, parts in by_limiter.items():
        total_mean = statistics.fmean(parts["total"])
        print(f"\nccxt enableRateLimit {'on (as bosun runs)' if limiter else 'off'}")
        print(f"{'':10} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'share':>6}")
        for name, values in parts.items():
            mean = statistics.fmean(values)
            print(f"{name:10} {pct(values, 0.5) * 1e3:8.3f} {pct(values, 0.99) * 1e3:8.3f} {mean * 1e3:8.3f} "
                  f"{mean / total_mean:6.1%}")
    print(f"reproduce: python bench/bench_submit_ack.py --orders {args.orders} --spacing-ms {args.spacing_ms:g} "
          f"--exchange {args.exchange}")


if __name__ == "__main__":
    main()
