"""`bosun up --config examples/live-sim.toml` against the exchange simulator: the whole platform
live (ingest on the simulator's market streams, signal, risk, execution through real ccxt,
portfolio in PostgreSQL), trading real BTCUSDT minutes with no money. At the end the portfolio's
position is the simulator's balance."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import aiohttp
import nats
import pytest

from bosun.apps import control
from bosun.apps.exchange_sim.auth import Credentials
from bosun.apps.exchange_sim.server import Simulator, serving
from bosun.runtime.urls import urls_from_env_or_state
from tests.builders import service_status
from tests.datafiles import BTC_1M, REPO, data_file, write_slice
from tests.natshelp import stored_count
from tests.processes import Up
from tests.simhelp import API_KEY, API_SECRET, sim_config

pytestmark = pytest.mark.integration

EXAMPLE = REPO / "examples" / "live-sim.toml"
BARS = 400
CHUNK_BARS = 20
START_BTC = Decimal("0.05")  # spot: a buy's commission is taken in BTC, so a sell of the same qty needs a little more


def rehearsal_config(sim_url: str, path: Path) -> Path:
    text = EXAMPLE.read_text().replace("http://127.0.0.1:9000", sim_url)
    path.write_text(text.replace("ws://127.0.0.1:9000", sim_url.replace("http", "ws")).replace("poll_s = 1.0",
                                                                                               "poll_s = 0.2"))
    return path


def expected_position(sim: Simulator) -> Decimal:
    """What the account's BTC says the position is: the balance past the start, plus the commission
    Binance kept in BTC (bosun books fees in quote)."""
    balances = sim.exchange.balances
    held = balances.free.get("BTC", Decimal(0)) + balances.locked.get("BTC", Decimal(0))
    return held - START_BTC + sum(f.commission for f in sim.exchange.trades if f.commission_asset == "BTC")


async def test_bosun_up_live_against_the_simulator_ends_with_positions_equal_to_its_balances(
        searchable_tmp_path: Path) -> None:
    data = write_slice(data_file(BTC_1M), searchable_tmp_path / "BTCUSDT_1m.csv", BARS + 10)
    config = sim_config(str(data), USDT="100000", BTC=str(START_BTC))
    async with serving(config, Credentials(API_KEY, API_SECRET)) as sim:
        path = rehearsal_config(sim.url, searchable_tmp_path / "live.toml")
        state = searchable_tmp_path / "state"
        up = Up(state, "--config", str(path),
                env={"BOSUN_BINANCE_API_KEY": API_KEY, "BOSUN_BINANCE_API_SECRET": API_SECRET})
        try:
            await asyncio.to_thread(up.wait_ready)
            assert "CAPPED LIVE" in up.output() and "trading     OFF until you run `bosun resume`" in up.output()
            nc = await nats.connect(urls_from_env_or_state(state)[0])
            try:
                await control.set_trading(nc, True)  # what `bosun resume` does
                await until(lambda: sim.market.subscribers, "ingest on the simulator's market stream")
                async with aiohttp.ClientSession() as http:
                    for n in range(1, BARS // CHUNK_BARS + 1):
                        await http.post(sim.url + "/sim/advance", json={"trades": 4 * CHUNK_BARS})  # 4 a bar
                        await until_async(lambda n=n: bars_stored(nc, n * CHUNK_BARS - 2), "ingest's bars", 30)
                execution = await service_status(nc, "execution")
                assert execution["capped_live"].startswith("CAPPED LIVE")
                try:
                    await until_async(lambda: books_agree(nc, sim), "portfolio agreeing with the simulator", 60)
                except AssertionError as exc:
                    logs = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in (state / "logs").glob("*.log")
                                     if p.stem in ("execution", "portfolio", "risk"))
                    raise AssertionError(f"{exc}: execution {await service_status(nc, 'execution')}, portfolio "
                                         f"{await service_status(nc, 'portfolio')}, simulator fills "
                                         f"{list(sim.exchange.trades)}, expected {expected_position(sim)}\n{logs}")
                portfolio = await service_status(nc, "portfolio")
            finally:
                await nc.close()
        finally:
            up.stop()
    fills = list(sim.exchange.trades)
    assert len(fills) >= 2, "the replay should have traded"  # sma 5/20 crosses often in 400 minutes
    [row] = [r for r in portfolio["positions"] if r["client"] == "desk"]
    assert Decimal(row["qty"]) == expected_position(sim)


async def bars_stored(nc, n: int) -> bool:
    return await stored_count(nc.jetstream(), "MARKET", "md.bar.>") >= n


async def books_agree(nc, sim: Simulator) -> bool:
    execution, portfolio = await service_status(nc, "execution"), await service_status(nc, "portfolio")
    rows = [r for r in portfolio.get("positions", []) if r["client"] == "desk"]
    held = Decimal(rows[0]["qty"]) if rows else Decimal(0)
    return (execution["fills"] == len(sim.exchange.trades) and not sim.exchange.open_orders(None)
            and held == expected_position(sim))


async def until(condition, what: str, timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)  # state of another task: polled, bounded by the timeout


async def until_async(condition, what: str, timeout: float) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not await condition():
                await asyncio.sleep(0.1)  # state of other processes: polled, bounded by the timeout
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}") from None
