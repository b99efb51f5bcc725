"""Execution as a real process on a private nats-server, trading live through ccxt against the
exchange simulator: an approved target becomes one order on the exchange, its fill comes back
on the order log once, and a restart of execution places nothing twice."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from pathlib import Path

import aiohttp
import pytest

from bosun.apps import control
from proto import codec
from proto import events as ev
from tests.builders import publish, service_status, target, until_trading
from tests.liveplatform import live_platform, until
from tests.natshelp import Collector, stored_count
from tests.simhelp import API_KEY, API_SECRET


@pytest.fixture
async def live(tmp_path: Path, fresh_database_url: str):
    async with live_platform(tmp_path, fresh_database_url) as platform:
        yield platform.nc, platform.execution, platform.sim


@pytest.mark.parametrize("exchange_id", ["binance", "bybit"])  # the simulator's two dialects, one engine
async def test_an_approved_target_trades_once_on_the_exchange_and_survives_a_restart(
        tmp_path: Path, fresh_database_url: str, exchange_id: str) -> None:
    async with live_platform(tmp_path, fresh_database_url, exchange_id=exchange_id) as live:
        nc, execution = live.nc, live.execution
        await control.set_trading(nc, True)
        await until_trading(nc, "execution", True)
        approved = ev.TargetApproved(id="alice.t1", ts_event=time.time_ns(), target=target(1, "0.01", exchange_id))
        async with (Collector(nc, "order.accepted.alice.>") as accepted,
                    Collector(nc, "order.filled.alice.>") as filled):
            await publish(nc, approved)
            [msg] = await accepted.wait(1, timeout=20)
            [fill_msg] = await filled.wait(1, timeout=20)
        fill = codec.decode(fill_msg.data, ev.OrderFilled)
        assert fill.client_order_id == codec.decode(msg.data, ev.OrderAccepted).client_order_id
        assert fill.qty == Decimal("0.01") and fill.venue == exchange_id
        [trade] = live.sim.exchange.trades
        assert fill.id == f"{exchange_id}-{trade.trade_id}"
        # The portfolio's position is what the account holds (plus the fee the exchange kept in BTC).
        held = live.sim.exchange.balances.free["BTC"] + live.sim.exchange.balances.locked["BTC"]
        assert await until("portfolio's position", lambda: portfolio_position(nc)) == held + trade.commission

        execution.stop()
        await execution.start(nc)  # the log replayed: the order was answered, nothing to place again
        await control.set_trading(nc, True)
        await until_trading(nc, "execution", True)
        js = nc.jetstream()
        assert await stored_count(js, "ORDERS", "order.submit.>") == 1
        assert await stored_count(js, "ORDERS", "order.accepted.>") == 1
        assert await stored_count(js, "ORDERS", "order.filled.>") == 1
        assert len(await live.exchange.fetch_open_orders("BTC/USDT")) == 0 and len(live.sim.exchange.trades) == 1


async def portfolio_position(nc) -> Decimal | None:
    rows = [r for r in (await service_status(nc, "portfolio")).get("positions", []) if r["client"] == "alice"]
    return Decimal(rows[0]["qty"]) if rows else None


async def test_the_api_key_and_secret_appear_in_nothing_execution_emits(live) -> None:
    """Logs (with the traces), every NATS message (subjects, headers, payloads) and the metrics,
    through an order, a fill, an exchange's refusal and a user stream cut mid-run."""
    nc, execution, sim = live
    async with Collector(nc, ">") as everything, aiohttp.ClientSession() as http:
        await control.set_trading(nc, True)
        await until_trading(nc, "execution", True)
        await execution.logged("user stream subscribed")  # after the start-up reconciliation
        async with Collector(nc, "order.filled.alice.>") as filled, Collector(nc, "order.rejected.alice.>") as refused:
            await http.post(sim.url + "/sim/faults", json={"stream_drop_after": 0})  # cut by the order's first event
            await publish(nc, ev.TargetApproved(id="alice.s1", ts_event=time.time_ns(), target=target(1, "0.01")))
            await filled.wait(1, timeout=20)  # by polling
            await publish(nc, ev.TargetApproved(id="alice.s2", ts_event=time.time_ns(), target=target(2, "50")))
            [refusal] = await refused.wait(1, timeout=20)  # 50 BTC on 100,000 USDT: the exchange says no
        assert b"InsufficientFunds" in refusal.data
        port = json.loads(next(line for line in execution.log.read_text().splitlines() if "metrics_port" in line))
        metrics = await (await http.get(f"http://127.0.0.1:{port['metrics_port']}/metrics")).read()
    execution.stop()  # its last spans are exported on the way out
    log = execution.log.read_bytes()
    assert b'"trace_id"' in log, "no trace exported"
    assert b"user stream lost" in log and b"bosun_" in metrics
    wire = [m.subject.encode() + m.data + repr(m.headers).encode() for m in everything.messages]
    assert len(wire) > 10
    for secret in (API_KEY.encode(), API_SECRET.encode()):
        assert secret not in log and secret not in metrics and not any(secret in m for m in wire)
