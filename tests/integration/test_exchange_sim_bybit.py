"""Real ccxt's bybit (async REST, and ccxt.pro for the private stream) against the simulator's
Bybit v5 dialect: the same engine, balances and faults as the Binance dialect, Bybit's signature,
shapes and retCodes, seen as the ccxt exceptions a live venue handles."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import ccxt.async_support as ccxt
import ccxt.pro as ccxtpro
import pytest

from bosun.apps.exchange_sim.auth import Credentials
from bosun.apps.exchange_sim.server import Simulator, serving
from services.execution.venues.dialects import BYBIT
from tests.datafiles import BTC_TRADES, data_file
from tests.integration.test_exchange_sim import control
from tests.simhelp import API_KEY, API_SECRET, client, sim_config

SYMBOL = "BTC/USDT"
START_USDT = Decimal(100_000)


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with serving(sim_config(str(data_file(BTC_TRADES)), USDT=str(START_USDT)),
                       Credentials(API_KEY, API_SECRET)) as sim:
        yield sim


@pytest.fixture
async def ex(sim: Simulator) -> AsyncIterator[Any]:
    exchange = client(ccxt, sim.url, exchange_id="bybit")
    await exchange.load_markets()
    try:
        yield exchange
    finally:
        await exchange.close()


async def test_markets_balances_and_a_market_buy(ex: Any, sim: Simulator) -> None:
    market = ex.market(SYMBOL)
    assert (market["id"], market["spot"], market["precision"]) == ("BTCUSDT", True, {"amount": 0.00001,
                                                                                     "price": 0.01})
    assert market["limits"]["cost"]["min"] == 5.0 and market["limits"]["amount"]["min"] == 0.00001
    assert abs(await ex.fetch_time() - ex.milliseconds()) < 5_000
    assert (await ex.fetch_balance())["USDT"] == {"free": 100_000.0, "used": 0.0, "total": 100_000.0, "debt": 0.0}
    placed = await ex.create_order(SYMBOL, "market", "buy", 0.01, None, {"clientOrderId": "bosun-1"})
    found = await BYBIT.fetch_by_client_id(ex, SYMBOL, "bosun-1")
    assert (found["id"], found["status"], found["filled"], found["info"]["marketUnit"]) == (
        placed["id"], "closed", 0.01, "baseCoin")
    [trade] = await ex.fetch_my_trades(SYMBOL)
    assert (trade["order"], trade["amount"], trade["fee"]["currency"]) == (placed["id"], 0.01, "BTC")
    balance = await ex.fetch_balance()
    btc = sim.exchange.balances.free["BTC"]
    assert Decimal(str(balance["BTC"]["total"])) == btc == Decimal("0.01") - Decimal(str(trade["fee"]["cost"]))
    # One account behind both dialects: Binance's API sees the same balance and the same order.
    binance = client(ccxt, sim.url)
    try:
        assert Decimal(str((await binance.fetch_balance())["BTC"]["total"])) == btc
        assert (await binance.fetch_order(None, SYMBOL, {"origClientOrderId": "bosun-1"}))["id"] == placed["id"]
    finally:
        await binance.close()


async def test_refusals_come_back_as_bybits_ret_codes_and_ccxts_classes(ex: Any) -> None:
    await ex.create_order(SYMBOL, "limit", "buy", 0.001, 30_000, {"clientOrderId": "bosun-dup"})
    await ex.cancel_order(None, SYMBOL, {"orderLinkId": "bosun-dup"})
    # Bybit refuses an orderLinkId used before, open or not (Binance: only while open).
    with pytest.raises(ccxt.InvalidOrder, match='"retCode":170141'):
        await ex.create_order(SYMBOL, "limit", "buy", 0.001, 30_000, {"clientOrderId": "bosun-dup"})
    with pytest.raises(ccxt.OrderNotFound, match='"retCode":170213'):
        await ex.cancel_order(None, SYMBOL, {"orderLinkId": "bosun-dup"})
    with pytest.raises(ccxt.InsufficientFunds, match='"retCode":170131'):
        await ex.create_order(SYMBOL, "limit", "buy", 10, 60_000)
    with pytest.raises(ccxt.InvalidOrder, match='"retCode":170140'):  # under the minimum order value
        await ex.create_order(SYMBOL, "limit", "buy", 0.00001, 30_000)
    with pytest.raises(ccxt.OrderNotFound):
        await BYBIT.fetch_by_client_id(ex, SYMBOL, "never-placed")
    assert await ex.cancel_all_orders(SYMBOL) == []  # nothing open: an empty list, not an error


async def test_signature_key_and_recv_window_are_checked(sim: Simulator, ex: Any) -> None:
    for bad in (client(ccxt, sim.url, exchange_id="bybit", secret="not-the-secret"),
                client(ccxt, sim.url, exchange_id="bybit", apiKey="not-the-key")):
        try:
            with pytest.raises(ccxt.AuthenticationError):
                await bad.fetch_balance()
        finally:
            await bad.close()
    ex.nonce = lambda: ex.milliseconds() - 20_000  # a client clock 20 s behind, with ccxt's 5 s window
    with pytest.raises(ccxt.InvalidNonce, match='"retCode":10002'):
        await ex.fetch_balance()


async def test_a_stop_loss_waits_locks_what_it_sells_and_triggers_on_real_trades(ex: Any, sim: Simulator) -> None:
    await ex.create_order(SYMBOL, "market", "buy", 0.01)
    last = sim.exchange.last_price["BTCUSDT"]
    await ex.create_order(SYMBOL, "market", "sell", 0.005, None,
                          {"clientOrderId": "bosun-stop", "stopLossPrice": float(last - 1)})
    [working] = await ex.fetch_open_orders(SYMBOL)
    assert (working["info"]["orderStatus"], working["info"]["stopOrderType"], working["triggerPrice"]) == (
        "Untriggered", "tpslOrder", float(last - 1))
    assert (await ex.fetch_balance())["BTC"]["used"] == 0.005
    await control(sim, "POST", "/sim/advance", {"trades": 3000})
    done = await BYBIT.fetch_by_client_id(ex, SYMBOL, "bosun-stop")
    assert (done["status"], done["filled"]) == ("closed", 0.005)


async def test_trades_come_newest_first_a_page_at_a_time_and_ccxt_pages_through_them(ex: Any) -> None:
    for _ in range(105):
        await ex.create_order(SYMBOL, "market", "buy", 0.0001)
    with pytest.raises(ccxt.BadRequest, match="'limit'"):
        await ex.fetch_my_trades(SYMBOL, None, 500)  # a page is 100 at most
    page = await ex.fetch_my_trades(SYMBOL, None, 100)
    assert len(page) == 100 and page[-1]["id"] == "105"  # the newest 100 (ccxt sorts them oldest first)
    everything = await ex.fetch_my_trades(SYMBOL, None, 500, {"paginate": True})
    assert len({t["id"] for t in everything}) == 105


async def test_throttles_and_a_dropped_answer(ex: Any, sim: Simulator) -> None:
    await control(sim, "POST", "/sim/faults", {"throttles": 1, "retry_after_s": 3, "paths": ["/v5/order/create"]})
    with pytest.raises(ccxt.RateLimitExceeded):
        await ex.create_order(SYMBOL, "market", "buy", 0.001)
    assert ex.last_response_headers["Retry-After"] == "3"
    await control(sim, "POST", "/sim/faults", {"drop_order_responses": 1})
    with pytest.raises(ccxt.NetworkError):
        await ex.create_order(SYMBOL, "limit", "buy", 0.001, 30_000, {"clientOrderId": "bosun-lost"})
    assert [o["clientOrderId"] for o in await ex.fetch_open_orders(SYMBOL)] == ["bosun-lost"]


async def test_the_private_stream_needs_its_auth_then_carries_executions_and_orders(sim: Simulator) -> None:
    wrong = client(ccxtpro, sim.url, exchange_id="bybit", secret="not-the-secret")
    try:
        with pytest.raises(ccxt.ExchangeError, match="Invalid sign"):  # the websocket's own auth, refused
            await wrong.authenticate(wrong.urls["api"]["ws"]["private"]["contract"])
    finally:
        await wrong.close()
    ex = client(ccxtpro, sim.url, exchange_id="bybit")
    try:
        await ex.load_markets()
        await ex.authenticate(ex.urls["api"]["ws"]["private"]["contract"])
        trades = asyncio.ensure_future(ex.watch_my_trades())
        async with asyncio.timeout(10):
            while not sim.streams.connections:
                await asyncio.sleep(0.01)  # the subscription reaching the simulator: polled, bounded
            placed = await ex.create_order(SYMBOL, "market", "buy", 0.01, None, {"clientOrderId": "bosun-ws"})
            [trade] = await trades
        assert (trade["order"], trade["info"]["orderLinkId"], trade["amount"]) == (placed["id"], "bosun-ws", 0.01)
    finally:
        await ex.close()


async def test_the_order_and_wallet_topics_as_bybit_sends_them(sim: Simulator, ex: Any) -> None:
    expires = str(ex.milliseconds() + 10_000)
    signature = hmac.new(API_SECRET.encode(), f"GET/realtime{expires}".encode(), hashlib.sha256).hexdigest()
    async with aiohttp.ClientSession() as http, http.ws_connect(sim.url.replace("http", "ws") + "/v5/private") as ws:
        await ws.send_json({"op": "subscribe", "req_id": "early", "args": ["order"]})
        assert (await ws.receive_json(timeout=5))["success"] is False  # not before auth
        await ws.send_json({"op": "auth", "args": [API_KEY, expires, signature]})
        assert (await ws.receive_json(timeout=5))["success"] is True
        await ws.send_json({"op": "subscribe", "req_id": "1", "args": ["order", "wallet"]})
        assert (await ws.receive_json(timeout=5))["success"] is True
        await ex.create_order(SYMBOL, "limit", "buy", 0.01, 30_000, {"clientOrderId": "bosun-topic"})
        order, wallet = await ws.receive_json(timeout=5), await ws.receive_json(timeout=5)
    assert order["topic"] == "order" and order["data"][0]["orderLinkId"] == "bosun-topic"
    assert (order["data"][0]["orderStatus"], order["data"][0]["category"]) == ("New", "spot")
    [usdt] = wallet["data"][0]["coin"]
    assert (wallet["topic"], usdt["coin"], usdt["locked"]) == ("wallet", "USDT", "300")
