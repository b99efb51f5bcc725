"""A live account on this machine for end-to-end tests: the exchange simulator, a private
nats-server, and execution and portfolio as real processes (with the test's PostgreSQL), plus
plain ccxt on the same exchange account for what a person would do by hand."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import ccxt.async_support as ccxt_async
import nats
from nats.aio.client import Client
from nats.js import api

from bosun.apps.exchange_sim.auth import Credentials
from bosun.apps.exchange_sim.server import Simulator, serving
from bosun.runtime.embedded import EmbeddedNats
from proto import codec
from proto import events as ev
from tests.datafiles import BTC_TRADES, data_file
from tests.natshelp import stored_count
from tests.processes import ServiceProcess, kill_9, server_env
from tests.simhelp import API_KEY, API_SECRET, client, sim_config

SYMBOL = "BTC/USDT"
CONFIG = """
mode = "live"
[[clients]]
id = "alice"
[clients.venues.{exchange}]
kind = "live"
exchange = "{exchange}"
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
    venue: str  # the ccxt id of the exchange the simulator speaks to it as, and the venue's name

    async def sim_control(self, method: str, path: str, body: object = None) -> dict:
        async with aiohttp.ClientSession() as http, http.request(method, self.sim.url + path, json=body) as answer:
            assert answer.status == 200, await answer.text()
            return await answer.json()

    async def all_orders(self) -> list[dict[str, Any]]:
        """Every order of the account on SYMBOL (Bybit's API lists open and done ones apart)."""
        if self.venue == "bybit":
            return await self.exchange.fetch_open_orders(SYMBOL) + await self.exchange.fetch_canceled_and_closed_orders(
                SYMBOL)
        return await self.exchange.fetch_orders(SYMBOL)

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
async def live_platform(tmp_path: Path, database_url: str, on_unprotected: str = "rearm",
                        more_config: str = "", exchange_id: str = "binance") -> AsyncIterator[Live]:
    async with serving(sim_config(str(data_file(BTC_TRADES)), USDT="100000"), Credentials(API_KEY, API_SECRET)) as sim:
        async with aiohttp.ClientSession() as http:
            await http.post(sim.url + "/sim/advance", json={"trades": 10})
        config = tmp_path / "bosun.toml"
        config.write_text(CONFIG.format(url=sim.url, on_unprotected=on_unprotected, exchange=exchange_id)
                          + more_config)
        with EmbeddedNats(tmp_path / "nats") as server:
            nc = await nats.connect(server.url)
            prefix = f"BOSUN_{exchange_id.upper()}_API_"
            env = {**server_env(server.url, database_url), prefix + "KEY": API_KEY, prefix + "SECRET": API_SECRET,
                   "OTEL_TRACES_EXPORTER": "console"}  # traces into its log, where the secrets test reads them
            execution = ServiceProcess("execution", config, tmp_path, env)
            portfolio = ServiceProcess("portfolio", config, tmp_path, server_env(server.url, database_url))
            exchange = client(ccxt_async, sim.url, exchange_id=exchange_id)
            try:
                await portfolio.start(nc)
                await execution.start(nc)
                yield Live(nc, execution, sim, exchange, database_url, exchange_id)
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
