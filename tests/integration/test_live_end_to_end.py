"""Execution as a real process on a private nats-server, trading live through ccxt against the
exchange simulator: an approved target becomes one order on the exchange, its fill comes back
on the order log once, and a restart of execution places nothing twice."""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

import pytest

from bosun.apps import control
from proto import codec
from proto import events as ev
from tests.builders import publish, target, until_trading
from tests.liveplatform import live_platform
from tests.natshelp import Collector, stored_count


@pytest.fixture
async def live(tmp_path: Path, fresh_database_url: str):
    async with live_platform(tmp_path, fresh_database_url) as platform:
        yield platform.nc, platform.execution, platform.sim


async def test_an_approved_target_trades_once_on_the_exchange_and_survives_a_restart(live) -> None:
    nc, execution, _ = live
    await control.set_trading(nc, True)
    await until_trading(nc, "execution", True)
    approved = ev.TargetApproved(id="alice.t1", ts_event=time.time_ns(), target=target(1, "0.01"))
    async with Collector(nc, "order.accepted.alice.>") as accepted, Collector(nc, "order.filled.alice.>") as filled:
        await publish(nc, approved)
        [msg] = await accepted.wait(1, timeout=20)
        [fill_msg] = await filled.wait(1, timeout=20)
    fill = codec.decode(fill_msg.data, ev.OrderFilled)
    assert fill.client_order_id == codec.decode(msg.data, ev.OrderAccepted).client_order_id
    assert fill.qty == Decimal("0.01") and fill.venue == "binance"

    execution.stop()
    await execution.start(nc)  # the log replayed: the order was answered, nothing to place again
    await control.set_trading(nc, True)
    await until_trading(nc, "execution", True)
    js = nc.jetstream()
    assert await stored_count(js, "ORDERS", "order.submit.>") == 1
    assert await stored_count(js, "ORDERS", "order.accepted.>") == 1
    assert await stored_count(js, "ORDERS", "order.filled.>") == 1
