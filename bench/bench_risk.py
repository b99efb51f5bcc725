"""The cost of one risk verdict with every cap set, on the in-process bus.

    python bench/bench_risk.py [--targets 20000] [--repeat 5] [--states]

Two clients, each with every limit of services/risk/config.py set (position and its notional,
gross and total gross, open orders, order rates, daily loss and drawdown in amount and %, price
band, price age), two markets priced and a position in each. Each target adds exposure and
alternates between an approval and a refusal by the price band, the last limit asked, so every
limit is asked each time; the clock moves a second per target so the rate windows stay open. Prints µs per verdict (publish to
verdict delivered), best and median of --repeat runs after one warm-up. `--states`: every circuit
breaker set too, and client b halted, so that each verdict also looks up its scopes' states."""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import msgspec  # noqa: E402

from bosun.apps.config import ClientConfig, Config  # noqa: E402
from bosun.runtime.clock import SimClock  # noqa: E402
from bosun.runtime.inproc import InProcessBus  # noqa: E402
from proto.events import OrderFilled, PositionChanged, PriceSnapshot, TargetPosition  # noqa: E402
from services.risk.actor import RiskActor  # noqa: E402
from services.risk.config import LimitsConfig  # noqa: E402
from services.signal.config import StrategyConfig  # noqa: E402

D = Decimal
S = 1_000_000_000
T0 = 1_700_000_000 * S
EVERY_CAP = LimitsConfig(
    max_position=D(5), max_position_per_symbol={"ETHUSDT": D(50)}, max_order_notional=D(200000),
    max_price_age_s=60, price_band_pct=D(5), max_position_notional=D(250000), max_gross_notional=D(300000),
    max_total_gross_notional=D(1000000), max_open_orders=50, max_orders_per_s=10, max_orders_per_min=600,
    max_daily_loss=D(5000), max_drawdown=D(8000), max_drawdown_pct=D(20))


BREAKERS = dict(stale_price_ms=100_000_000, max_errors=5, max_ack_latency_ms=2000, halt_on_unknown_order=True,
                halt_on_market_halt=True)  # stale_price: longer than a run at a second per target


def setup(states: bool = False) -> tuple[SimClock, InProcessBus]:
    limits = msgspec.structs.replace(EVERY_CAP, **BREAKERS) if states else EVERY_CAP
    clients = [ClientConfig(id=c, strategies=["s"], capital=D(100000), risk=limits) for c in ("a", "b")]
    config = Config(clients=clients, strategies=[StrategyConfig(name="s", params={"fast": 1, "slow": 2})])
    clock, bus = SimClock(T0), InProcessBus()
    bus.attach(RiskActor(clock, bus, config.risk_config()))
    bus.set_trading_enabled(True)
    for symbol, price in (("BTCUSDT", D(60000)), ("ETHUSDT", D(3000))):
        bus.publish(PriceSnapshot(id=symbol, ts_event=T0, venue="binance", symbol=symbol, price=price))
        for client in ("a", "b"):
            bus.publish(OrderFilled(id=f"{client}{symbol}", ts_event=T0, client_order_id=f"o{client}{symbol}",
                                    client=client, venue="binance", symbol=symbol, side="buy", qty=D(1), price=price,
                                    fee=D(0)))
            bus.publish(PositionChanged(id=f"p{client}{symbol}", ts_event=T0, client=client, venue="binance",
                                        symbol=symbol, qty=D(1), avg_price=price, realized_pnl=D(0),
                                        unrealized_pnl=D(0), fees=D(0), fill_id=f"{client}{symbol}"))
    if states:
        bus.put_control("trading_enabled.b", b"false")
    bus.drain()
    return clock, bus


def run(n: int, states: bool = False) -> float:
    """µs per verdict over `n` targets."""
    clock, bus = setup(states)
    targets = [TargetPosition(id=f"t{i}", ts_event=T0 + i * S, client="a", venue="binance", symbol="BTCUSDT",
                              qty=D(2), strategy="s", price=D(70000) if i % 2 else D(60000)) for i in range(n)]
    verdicts = []
    bus.subscribe("target.approved.>", verdicts.append)
    bus.subscribe("risk.breach.>", verdicts.append)
    publish, drain, advance = bus.publish, bus.drain, clock.advance_to
    start = time.perf_counter()
    for t in targets:
        advance(t.ts_event)
        publish(t)
        drain()
    elapsed = time.perf_counter() - start
    assert len(verdicts) == n, (len(verdicts), n)
    return elapsed / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--states", action="store_true", help="every breaker set too, and another client halted")
    args = parser.parse_args()
    print(f"{platform.python_implementation()} {platform.python_version()}")
    run(min(args.targets, 2000), args.states)  # warm-up
    times = [run(args.targets, args.states) for _ in range(args.repeat)]
    print(f"risk verdict, every cap set{' and every breaker' if args.states else ''}: best {min(times):.1f} µs, median {statistics.median(times):.1f} µs "
          f"({args.targets} targets x {args.repeat})")


if __name__ == "__main__":
    main()
