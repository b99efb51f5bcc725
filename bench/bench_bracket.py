"""A bracket on a live spot account: what placing its two legs as one OCO order list costs
against placing a stop-loss alone, through ccxt against the exchange simulator on loopback.

    python bench/bench_bracket.py [--rounds 200]

The simulator (on real BTCUSDT trades, the market held still) runs in this process on the same
event loop as the client. The account holds 0.01 BTC. Each round places, in turn, a bracket
(`CcxtEdge.place_bracket`: the list looked up by its client id, the open orders read for a leg
placed alone, the balance read for the size, the list sent) and a stop alone (`CcxtEdge.place`:
the order looked up, the balance read, the order sent), then cancels what it placed, untimed.
ccxt's limiter (`enableRateLimit`) is on and off in alternate rounds: on, as bosun runs, each
request waits its turn (Binance: 50 ms apart, times the endpoint's weight), so the figure is mostly
the count of requests. bosun's own order budget is opened wide: it would pace the rounds, not time them."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bosun.apps.exchange_sim.auth import Credentials  # noqa: E402
from bosun.apps.exchange_sim.server import serving  # noqa: E402
from proto.events import OrderAccepted, SubmitOrder  # noqa: E402
from services.execution.config import ExecutionConfig, VenueConfig  # noqa: E402
from services.execution.venues.ccxt_edge import CcxtEdge  # noqa: E402
from tests.datafiles import BTC_TRADES, data_dir  # noqa: E402
from tests.simhelp import API_KEY, API_SECRET, sim_config  # noqa: E402

ENV = {"BOSUN_BINANCE_API_KEY": API_KEY, "BOSUN_BINANCE_API_SECRET": API_SECRET}
SYMBOL = "BTC/USDT"


def leg(n: int, order_type: str, stop_price: str) -> SubmitOrder:
    return SubmitOrder(id=f"bench-{order_type[:4]}-{n}", ts_event=time.time_ns(), client="alice", venue="binance",
                       symbol="BTCUSDT", side="sell", qty=Decimal(0), order_type=order_type,  # type: ignore[arg-type]
                       stop_price=Decimal(stop_price), close_position=True, oco=f"bench-group-{n}", target_id=f"t{n}")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(rounds: int) -> None:
    config = sim_config(str(data_dir() / BTC_TRADES), USDT="100000")
    async with serving(config, Credentials(API_KEY, API_SECRET)) as sim:
        sim.exchange.advance(trades=10)
        venue = VenueConfig(kind="live", api_url=sim.url, order_budget=100_000, min_replace_interval_s=0)
        edge = CcxtEdge(ExecutionConfig(venues={"alice": {"binance": venue}}), environ=ENV)
        exchange = edge.accounts[("alice", "binance")].exchange
        entry = msgspec.structs.replace(leg(0, "market", "1"), side="buy", qty=Decimal("0.01"), stop_price=None,
                                        close_position=False, oco=None)
        await edge.place(entry)
        times: dict[tuple[str, bool], list[float]] = {}
        requests: dict[str, list[int]] = {"bracket": [], "stop alone": []}
        for n in range(1, rounds + 1):
            limiter = exchange.enableRateLimit = n % 2 == 0
            stop, take_profit = leg(n, "stop_market", "1000.00"), leg(n, "take_profit_market", "70000.00")
            for what, place in (("bracket", lambda: edge.place_bracket(stop, take_profit)),
                                ("stop alone", lambda: edge.place(stop))):
                before = len(sim.rest.requests)
                start = time.perf_counter()
                answers = await place()
                times.setdefault((what, limiter), []).append(time.perf_counter() - start)
                requests[what].append(len(sim.rest.requests) - before)
                assert all(type(a) is OrderAccepted for a in answers), answers
                await exchange.cancel_order(None, SYMBOL, {"origClientOrderId": stop.id})  # the list goes with it
                stop = msgspec.structs.replace(stop, id=stop.id + "-alone")
        await edge.close()
    print(f"{rounds} rounds; requests per placement: "
          + ", ".join(f"{what} {statistics.median(counts):.0f}" for what, counts in requests.items()))
    print("| ms, p50 / p99 | limiter on (as bosun runs) | limiter off |\n|---|---|---|")
    for what in requests:
        cells = [f"{pct(times[(what, on)], 0.5) * 1e3:.2f} / {pct(times[(what, on)], 0.99) * 1e3:.2f}"
                 for on in (True, False)]
        print(f"| {what} | {cells[0]} | {cells[1]} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=200)
    asyncio.run(run(parser.parse_args().rounds))


if __name__ == "__main__":
    main()
