"""An order log made by trading real bars (BTCUSDT 1m, 2024-10) through execution and its shadow
venue on the in-process bus: brackets, limit entries that expire, a kill switch flipped now and
then, and a live account's entries (what a crash leaves among them); and execution's actors
replaying it, as the NATS binding does before they start."""

from __future__ import annotations

import random
from decimal import Decimal as D
from itertools import islice

from bosun.apps.backtest import open_data
from bosun.apps.config import ClientConfig, Config
from bosun.runtime.actor import Delivery
from bosun.runtime.clock import SimClock
from bosun.runtime.inproc import InProcessBus
from bosun.runtime.replicas import REFUSING
from proto import subjects as sj
from proto.events import (Bar, CancelOrder, Event, OrderAccepted, OrderCanceled, OrderFilled, SubmitOrder,
                          TargetApproved, TargetPosition)
from services.execution.actor import ExecutionActor
from services.execution.config import VenueConfig
from services.execution.venues.live import LiveAdapter
from services.execution.venues.shadow_adapter import ShadowAdapter
from tests.datafiles import BTC_1M, data_file

BARS = 3_000


def config() -> Config:
    market = VenueConfig(fee_bps=D(10), slippage_bps=D(5), step_size=D("0.0001"))
    limit = VenueConfig(fee_bps=D(2), step_size=D("0.0001"), tick_size=D("0.01"), entry="limit",
                        limit_offset_bps=D(5), limit_ttl_s=D(300))
    live = VenueConfig(kind="live", exchange="binance", step_size=D("0.0001"))
    return Config(strategies=[], mode="live", clients=[
        ClientConfig(id="alice", venues={"binance": market}),
        ClientConfig(id="bob", venues={"binance": limit, "kraken": live})])


def target(n: int, client: str, bar: Bar, qty: D, levels: bool) -> TargetApproved:
    extra = {"stop_loss": bar.close * D("0.995"), "take_profit": bar.close * D("1.005")} if levels and qty > 0 else {}
    t = TargetPosition(id=f"t{n}.{client}", ts_event=bar.ts_event, client=client, venue="binance", symbol="BTCUSDT",
                       qty=qty, strategy="test", price=bar.close, **extra)
    return TargetApproved(id=t.id, ts_event=t.ts_event, target=t)


def live_entries(n: int, ts: int) -> list[Event]:
    """A live account's log for one order: submitted, then (by n) accepted and filled, canceled,
    or left unanswered with a cancel (what a crash leaves)."""
    coid = f"live{n}"
    where = {"client": "bob", "venue": "kraken", "symbol": "BTCUSDT"}
    submit = SubmitOrder(id=coid, ts_event=ts, side="buy", qty=D("0.01"), order_type="market", target_id=f"lt{n}",
                         **where)
    match n % 3:
        case 0:
            return [submit, OrderAccepted(id=coid, ts_event=ts, client_order_id=coid, venue_order_id=f"v{n}", **where),
                    OrderFilled(id=f"trade{n}", ts_event=ts, client_order_id=coid, side="buy", qty=D("0.01"),
                                price=D(60000), fee=D(0), **where)]
        case 1:
            return [submit, OrderCanceled(id=coid, ts_event=ts, client_order_id=coid, reason="test", **where)]
        case _:
            return [submit, CancelOrder(id=f"{coid}.cancel", ts_event=ts, client_order_id=coid, reason="test",
                                        **where)]


def order_log() -> list[Event]:
    """Every ORDERS entry of a run over real bars, in the order published."""
    _, bars = open_data([data_file(BTC_1M)])
    cfg = config().execution_config()
    bus = InProcessBus()
    for actor in (ExecutionActor(SimClock(), bus, cfg), ShadowAdapter(SimClock(), bus, cfg)):
        bus.attach(actor)
    log: list[Event] = []
    bus.subscribe(sj.ORDERS, log.append)
    rng = random.Random(9)
    bus.set_trading_enabled(True)
    for i, bar in enumerate(islice(bars, BARS)):
        bus.publish(bar)
        if i % 5 == 0:
            for client in ("alice", "bob"):
                qty = D(rng.choice((-2, -1, 0, 1, 2, 3))) / 100
                bus.publish(target(i, client, bar, qty, levels=rng.random() < 0.6))
        if i % 97 == 0:
            bus.set_trading_enabled(False)
        elif i % 97 == 3:
            bus.set_trading_enabled(True)
        if i % 11 == 0:
            for event in live_entries(i, bar.ts_event):
                bus.publish(event)
        bus.drain()
    kinds = {type(e).__name__ for e in log}
    assert {"SubmitOrder", "OrderFilled", "OrderCanceled", "OrdersCanceled", "CancelOrder", "CancelAllOrders",
            "OrderAccepted", "CancelOrder"} <= kinds, kinds  # the log exercises what the replay handles
    assert any(e.order_type == "stop_market" for e in log if type(e) is SubmitOrder)
    assert any(e.order_type == "limit" for e in log if type(e) is SubmitOrder)
    return log


def actors() -> list:
    cfg = config().execution_config()
    return [ExecutionActor(SimClock(), REFUSING, cfg, durable=True), ShadowAdapter(SimClock(), REFUSING, cfg),
            LiveAdapter(SimClock(), REFUSING, cfg)]


def replay(made: list, entries: list[Event]) -> list:
    handlers = [inp.handler for a in made for inp in a.inputs() if inp.delivery is Delivery.REPLAY]
    for entry in entries:
        for handler in handlers:
            handler(entry)
    return made
