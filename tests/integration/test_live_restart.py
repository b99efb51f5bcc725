"""Restart reconciliation of a live account: execution and portfolio as real processes on a
private nats-server and a real PostgreSQL, trading through ccxt against the exchange simulator.
Each fault its own test: execution killed (-9) between submitting an order and the exchange's
answer; an order on the exchange that nobody intended; a position that lost its stop while
execution was down (re-armed, flattened or halted, as the venue's `on_unprotected` says)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import ccxt.async_support as ccxt_async
import nats
from nats.aio.client import Client
from nats.js import api

from bosun.apps import control
from bosun.apps.exchange_sim.auth import Credentials
from bosun.apps.exchange_sim.server import Simulator, serving
from bosun.runtime.embedded import EmbeddedNats
from proto import codec
from proto import events as ev
from services.execution.orders import client_order_id
from tests.builders import publish, service_status, target, until_trading
from tests.datafiles import BTC_TRADES, data_file
from tests.natshelp import stored_count
from tests.processes import ServiceProcess, kill_9, server_env
from tests.simhelp import API_KEY, API_SECRET, client, sim_config

SYMBOL = "BTC/USDT"
CONFIG = """
mode = "live"
[[clients]]
id = "alice"
[clients.venues.binance]
kind = "live"
api_url = "{url}"
poll_s = 0.1
on_unprotected = "{on_unprotected}"
"""
TIMEOUT_S = 30.0


@dataclass
class Live:
    nc: Client
    execution: ServiceProcess
    sim: Simulator
    exchange: Any  # plain ccxt on the same account: what a person does by hand
    database_url: str

    async def sim_control(self, method: str, path: str, body: object = None) -> dict:
        async with aiohttp.ClientSession() as http, http.request(method, self.sim.url + path, json=body) as answer:
            assert answer.status == 200, await answer.text()
            return await answer.json()

    async def restart_execution(self, kill: bool = False) -> None:
        if kill:
            kill_9(self.execution.proc.pid)
        else:
            self.execution.stop()
        await self.execution.start(self.nc)

    async def booked_fills(self) -> list[str]:
        conn = await asyncpg.connect(self.database_url)
        try:
            return [r["fill_id"] for r in await conn.fetch("SELECT fill_id FROM fills ORDER BY seq")]
        finally:
            await conn.close()


@asynccontextmanager
async def live_platform(tmp_path: Path, database_url: str, on_unprotected: str = "rearm") -> AsyncIterator[Live]:
    async with serving(sim_config(str(data_file(BTC_TRADES)), USDT="100000"), Credentials(API_KEY, API_SECRET)) as sim:
        async with aiohttp.ClientSession() as http:
            await http.post(sim.url + "/sim/advance", json={"trades": 10})
        config = tmp_path / "bosun.toml"
        config.write_text(CONFIG.format(url=sim.url, on_unprotected=on_unprotected))
        with EmbeddedNats(tmp_path / "nats") as server:
            nc = await nats.connect(server.url)
            env = {**server_env(server.url, database_url), "BOSUN_BINANCE_API_KEY": API_KEY,
                   "BOSUN_BINANCE_API_SECRET": API_SECRET}
            execution = ServiceProcess("execution", config, tmp_path, env)
            portfolio = ServiceProcess("portfolio", config, tmp_path, server_env(server.url, database_url))
            exchange = client(ccxt_async, sim.url)
            try:
                await portfolio.start(nc)
                await execution.start(nc)
                yield Live(nc, execution, sim, exchange, database_url)
            finally:
                execution.stop()
                portfolio.stop()
                await exchange.close()
                await nc.close()


async def until(what: str, check, timeout: float = TIMEOUT_S) -> Any:
    """Until `await check()` is truthy (polling a state query, bounded by a deadline); its value."""
    deadline = time.monotonic() + timeout
    while not (value := await check()):
        assert time.monotonic() < deadline, f"not within {timeout}s: {what}"
        await asyncio.sleep(0.05)
    return value


async def audited_reports(nc: Client) -> list[ev.ReconciliationReport]:
    """The ReconciliationReports the AUDIT stream holds."""
    js = nc.jetstream()
    n = await stored_count(js, "AUDIT", "order.reconciled.>")
    if not n:
        return []
    sub = await js.subscribe("order.reconciled.>", stream="AUDIT", ordered_consumer=True,
                             deliver_policy=api.DeliverPolicy.ALL)
    try:
        return [codec.decode((await sub.next_msg(timeout=5)).data, ev.ReconciliationReport) for _ in range(n)]
    finally:
        await sub.unsubscribe()


async def approve(live: Live, n: int, qty: str, **levels: Decimal) -> str:
    t = target(n, qty)
    t = ev.TargetPosition(**{**{f: getattr(t, f) for f in t.__struct_fields__}, **levels})
    await publish(live.nc, ev.TargetApproved(id=t.id, ts_event=t.ts_event, target=t))
    return t.id


async def trading_on(live: Live) -> None:
    await control.set_trading(live.nc, True)
    await until_trading(live.nc, "execution", True)


async def test_kill_9_between_submit_and_answer_leaves_one_order_one_fill_and_trading_off(
        tmp_path: Path, fresh_database_url: str) -> None:
    async with live_platform(tmp_path, fresh_database_url) as live:
        await trading_on(live)
        # The exchange takes the order at once and answers 20 s later: execution is killed in between.
        await live.sim_control("POST", "/sim/faults", {"latency_ms": 20_000, "paths": ["/api/v3/order"]})
        tid = await approve(live, 1, "0.01")
        [trade] = await until("the order filled on the exchange", lambda: live.exchange.fetch_my_trades(SYMBOL))
        js = live.nc.jetstream()
        assert await stored_count(js, "ORDERS", "order.submit.>") == 1
        kill_9(live.execution.proc.pid)
        assert await stored_count(js, "ORDERS", "order.accepted.>") == 0  # killed before the answer

        await live.sim_control("DELETE", "/sim/faults")
        await live.execution.start(live.nc)
        assert (await service_status(live.nc, "execution"))["trading_enabled"] is False
        fill_id = f"binance-{trade['id']}"
        assert await until("the fill booked by portfolio", live.booked_fills) == [fill_id]
        [report] = await until("the reconciliation audited", lambda: audited_reports(live.nc))
        assert report.done == ()  # the order was adopted, not placed again: nothing to mend

        orders = await live.exchange.fetch_orders(SYMBOL)
        assert [o["clientOrderId"] for o in orders] == [client_order_id(tid, 1)]  # exactly one order
        assert await stored_count(js, "ORDERS", "order.filled.>") == 1
        assert (await service_status(live.nc, "execution"))["trading_enabled"] is False  # until a person resumes
        await trading_on(live)
        assert await live.booked_fills() == [fill_id]


async def test_an_order_nobody_intended_is_cancelled_at_reconciliation_and_reported(
        tmp_path: Path, fresh_database_url: str) -> None:
    async with live_platform(tmp_path, fresh_database_url) as live:
        stray = await live.exchange.create_order(SYMBOL, "limit", "buy", 0.001, 30_000,
                                                 {"newClientOrderId": "by-hand-1"})
        await live.restart_execution(kill=True)
        await until("the stray order cancelled", lambda: _none_open(live))
        reports = await until("the reconciliation audited", lambda: audited_reports(live.nc))
        [report] = [r for r in reports if r.done]
        assert report.found == ("order by-hand-1 open on the venue, in no intent",)
        assert (report.done, report.why) == (("cancel by-hand-1",), ("reconciliation: no intent explains it",))
        assert (await live.exchange.fetch_order(stray["id"], SYMBOL))["status"] == "canceled"
        assert (await service_status(live.nc, "execution"))["trading_enabled"] is False


async def _none_open(live: Live) -> bool:
    return not await live.exchange.fetch_open_orders(SYMBOL)


async def _lose_the_stop(live: Live, on_unprotected: str) -> tuple[str, ev.ReconciliationReport]:
    """Long 0.01 with a stop; execution stops; the stop is cancelled by hand; execution starts again."""
    await trading_on(live)
    tid = await approve(live, 1, "0.01", stop_loss=Decimal("1000"))
    [stop] = await until("the stop on the exchange", lambda: live.exchange.fetch_open_orders(SYMBOL))
    assert (stop["clientOrderId"], stop["info"]["type"]) == (client_order_id(tid, 2), "STOP_LOSS")
    assert await until("the entry booked", live.booked_fills)
    live.execution.stop()
    await live.exchange.cancel_order(stop["id"], SYMBOL)
    await live.execution.start(live.nc)
    reports = await until("the reconciliation audited", lambda: audited_reports(live.nc))
    [report] = [r for r in reports if r.done]
    assert report.found[-1] == f"position 0.01 without its protective orders (levels of target {tid})"
    assert report.why[-1] == f"on_unprotected = {on_unprotected!r} for venue binance"
    return tid, report


async def test_a_position_without_its_stop_is_rearmed(tmp_path: Path, fresh_database_url: str) -> None:
    async with live_platform(tmp_path, fresh_database_url, "rearm") as live:
        _, report = await _lose_the_stop(live, "rearm")
        assert report.done[-1] == "re-armed stop_loss 1000, take_profit None"
        [stop] = await until("a new stop on the exchange", lambda: live.exchange.fetch_open_orders(SYMBOL))
        held = (await live.exchange.fetch_balance())["BTC"]["total"]  # 0.01 less the fee taken in BTC
        assert (stop["info"]["type"], stop["amount"], stop["side"]) == ("STOP_LOSS", held, "sell")


async def test_a_position_without_its_stop_is_flattened(tmp_path: Path, fresh_database_url: str) -> None:
    async with live_platform(tmp_path, fresh_database_url, "flatten") as live:
        _, report = await _lose_the_stop(live, "flatten")
        assert report.done[-1] == "flatten 0.01 at market"
        fills = await until("the position closed", lambda: _two(live.booked_fills))
        assert len(set(fills)) == 2
        assert await live.exchange.fetch_open_orders(SYMBOL) == []
        balance = await live.exchange.fetch_balance()
        assert balance["BTC"]["total"] == 0


async def test_a_position_without_its_stop_halts_trading(tmp_path: Path, fresh_database_url: str) -> None:
    async with live_platform(tmp_path, fresh_database_url, "halt") as live:
        _, report = await _lose_the_stop(live, "halt")
        assert report.done[-1] == "halt trading"
        assert await live.exchange.fetch_open_orders(SYMBOL) == []  # nothing placed: a person decides
        assert (await service_status(live.nc, "execution"))["trading_enabled"] is False
        assert len(await live.booked_fills()) == 1


async def _two(read) -> list[str] | None:
    fills = await read()
    return fills if len(fills) >= 2 else None
