"""The live venue's ccxt edge against the exchange simulator (real ccxt, real HTTP, real BTCUSDT
trades): orders placed once whatever the network does, refusals named, fills read back once."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from decimal import Decimal

import aiohttp
import msgspec
import pytest

from bosun.apps.exchange_sim.auth import Credentials
from bosun.apps.exchange_sim.server import Simulator, serving
from proto.events import OrderAccepted, OrderCanceled, OrderFilled, OrderRejected, SubmitOrder
from services.execution.config import ExecutionConfig, VenueConfig
from services.execution.venues import ccxt_edge
from services.execution.venues.ccxt_edge import CcxtEdge
from tests.datafiles import BTC_TRADES, data_file
from tests.simhelp import API_KEY, API_SECRET, sim_config

ENV = {"BOSUN_BINANCE_API_KEY": API_KEY, "BOSUN_BINANCE_API_SECRET": API_SECRET}


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with serving(sim_config(str(data_file(BTC_TRADES)), USDT="100000"), Credentials(API_KEY, API_SECRET)) as sim:
        yield sim


@pytest.fixture
async def edge(sim: Simulator, monkeypatch) -> AsyncIterator[CcxtEdge]:
    monkeypatch.setattr(ccxt_edge, "BACKOFF_S", 0.01)  # the backoff's shape is the same, only shorter
    monkeypatch.setattr(ccxt_edge, "MAX_BACKOFF_S", 0.05)
    config = ExecutionConfig(venues={"alice": {"binance": VenueConfig(kind="live", api_url=sim.url)}})
    edge = CcxtEdge(config, environ=ENV)
    try:
        yield edge
    finally:
        await edge.close()


def order(n: int = 1, qty: str = "0.01", order_type: str = "market", limit: str | None = None,
          side: str = "buy") -> SubmitOrder:
    return SubmitOrder(id=f"bs-test-{n}-{time.time_ns() % 10**9}", ts_event=time.time_ns(), client="alice",
                       venue="binance", symbol="BTCUSDT", side=side, qty=Decimal(qty), order_type=order_type,
                       limit_price=Decimal(limit) if limit else None, target_id=f"t{n}")


async def control(sim: Simulator, method: str, path: str, body: object = None) -> dict:
    async with aiohttp.ClientSession() as http, http.request(method, sim.url + path, json=body) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def test_a_market_order_is_accepted_and_its_fill_read_back_once(sim: Simulator, edge: CcxtEdge) -> None:
    await control(sim, "POST", "/sim/advance", {"trades": 10})
    placed = order()
    [accepted] = await edge.place(placed)
    assert isinstance(accepted, OrderAccepted) and accepted.client_order_id == placed.id
    [fill] = await edge.fills()
    assert isinstance(fill, OrderFilled) and fill.client_order_id == placed.id
    assert (fill.side, fill.qty) == ("buy", Decimal("0.01")) and fill.fee > 0
    again = await edge.fills()
    assert [f.id for f in again] in ([], [fill.id])  # read again at most, never a new id: published once by id


async def test_an_answer_lost_after_the_exchange_took_the_order_places_it_once(sim: Simulator,
                                                                                edge: CcxtEdge) -> None:
    await control(sim, "POST", "/sim/advance", {"trades": 10})
    await control(sim, "POST", "/sim/faults", {"drop_order_responses": 1})
    placed = order(2, order_type="limit", limit="1000")  # far below the market: it rests
    [accepted] = await edge.place(placed)
    assert isinstance(accepted, OrderAccepted)
    ex = edge.accounts[("alice", "binance")].exchange
    resting = await ex.fetch_open_orders("BTC/USDT")
    assert [o["clientOrderId"] for o in resting] == [placed.id]  # exactly one on the venue


async def test_throttling_is_waited_out_within_the_bound(sim: Simulator, edge: CcxtEdge) -> None:
    await control(sim, "POST", "/sim/advance", {"trades": 10})
    await control(sim, "POST", "/sim/faults", {"throttles": 2, "throttle_status": 429, "retry_after_s": 1})
    [accepted] = await edge.place(order(3, order_type="limit", limit="1000"))
    assert isinstance(accepted, OrderAccepted)


async def test_refusals_name_the_rule_or_the_exchanges_reason_and_hold_no_key(sim: Simulator,
                                                                               edge: CcxtEdge) -> None:
    await control(sim, "POST", "/sim/advance", {"trades": 10})
    [too_small] = await edge.place(order(4, qty="0.0000001"))
    assert isinstance(too_small, OrderRejected) and "minimum" in too_small.reason
    [too_big] = await edge.place(order(5, qty="50", order_type="limit", limit="60000"))  # 3M USDT on 100k
    assert isinstance(too_big, OrderRejected) and "InsufficientFunds" in too_big.reason
    [stop] = await edge.place(order(6, order_type="stop_market"))
    assert isinstance(stop, OrderRejected) and "not placed on live venues yet" in stop.reason
    gtd = msgspec.structs.replace(order(7, order_type="limit", limit="1000"), time_in_force="GTD",
                                  expire_ns=time.time_ns() + 10**10)
    [expiring] = await edge.place(gtd)
    assert isinstance(expiring, OrderRejected) and "GTD orders are not placed on live venues yet" in expiring.reason
    for rejected in (too_small, too_big, stop):
        assert API_KEY not in rejected.reason and API_SECRET not in rejected.reason


async def test_cancel_and_cancel_all_leave_nothing_open(sim: Simulator, edge: CcxtEdge) -> None:
    await control(sim, "POST", "/sim/advance", {"trades": 10})
    first, second = order(7, order_type="limit", limit="1000"), order(8, order_type="limit", limit="1001")
    await edge.place(first)
    await edge.place(second)
    [canceled] = await edge.cancel("alice", "binance", "BTCUSDT", first.id, "superseded")
    assert isinstance(canceled, OrderCanceled) and canceled.client_order_id == first.id
    again = await edge.cancel("alice", "binance", "BTCUSDT", first.id, "again")  # cancelled already: the same id
    assert [c.id for c in again] in ([], [canceled.id])
    rest = await edge.cancel_all("alice", "binance", "BTCUSDT", "kill_switch")
    assert [c.client_order_id for c in rest] == [second.id]
    ex = edge.accounts[("alice", "binance")].exchange
    assert await ex.fetch_open_orders("BTC/USDT") == []


async def test_the_exchange_order_ids_it_remembers_are_bounded(monkeypatch) -> None:
    monkeypatch.setattr(ccxt_edge, "ORDERS_REMEMBERED", 2)
    edge = CcxtEdge(ExecutionConfig(venues={"alice": {"binance": VenueConfig(kind="live")}}), environ={})
    try:
        account = edge.accounts[("alice", "binance")]
        for n in range(3):
            edge._accepted(account, order(n), {"id": n, "timestamp": 1})
        assert list(account.coids) == ["1", "2"]  # the oldest went first
    finally:
        await edge.close()
