"""Real ccxt (async REST, and ccxt.pro for the user stream) against the exchange simulator on a
free loopback port, matching orders against real BTCUSDT trades. Each fault is its own test and
is seen as the ccxt exception a live venue would have to handle."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from itertools import islice
from typing import Any

import aiohttp
import msgspec
import ccxt.async_support as ccxt
import ccxt.pro as ccxtpro
import pytest

from bosun.apps.exchange_sim.auth import Credentials
from bosun.apps.exchange_sim.server import Simulator, serving
from bosun.runtime.embedded import free_port
from proto.events import Bar, Trade
from services.ingest.binance_ws import parse_message
from services.ingest.files import read_trades
from tests.datafiles import BTC_TRADES, data_file
from tests.simhelp import API_KEY, API_SECRET, client, sim_config

SYMBOL = "BTC/USDT"
START_USDT = Decimal(100_000)
FEE = Decimal("0.001")  # the default 10 bps


@pytest.fixture(scope="module")
def trades_path() -> str:
    return str(data_file(BTC_TRADES))


@pytest.fixture
async def sim(trades_path: str) -> AsyncIterator[Simulator]:
    async with serving(sim_config(trades_path, USDT=str(START_USDT)), Credentials(API_KEY, API_SECRET)) as sim:
        yield sim


@pytest.fixture
async def ex(sim: Simulator) -> AsyncIterator[Any]:
    exchange = client(ccxt, sim.url)
    await exchange.load_markets()
    try:
        yield exchange
    finally:
        await exchange.close()


async def control(sim: Simulator, method: str, path: str, body: object = None) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.request(method, sim.url + path, json=body) as response:
        assert response.status == 200, await response.text()
        return await response.json()


def first_trades(path: str, n: int) -> list[tuple[Decimal, Decimal]]:
    return [(t.price, t.qty) for t in islice(read_trades(path), n)]


# ----------------------------------------------------------------------------- the API


async def test_markets_come_from_the_data(ex: Any) -> None:
    market = ex.market(SYMBOL)
    assert (market["id"], market["spot"], market["active"]) == ("BTCUSDT", True, True)
    # The finest decimals the real trades used: prices in cents, quantities in 1e-5 BTC.
    assert market["precision"]["price"] == 0.01 and market["precision"]["amount"] == 0.00001
    assert market["limits"]["cost"]["min"] == 5.0
    assert abs(await ex.fetch_time() - ex.milliseconds()) < 5_000  # server time is the wall clock


async def test_balance_and_a_market_buy_filled_at_the_last_trade(ex: Any, trades_path: str) -> None:
    assert (await ex.fetch_balance())["USDT"] == {"free": 100_000.0, "used": 0.0, "total": 100_000.0}
    last = first_trades(trades_path, 1)[0][0]  # the market opens with the file's first trade
    order = await ex.create_order(SYMBOL, "market", "buy", 0.01)
    assert (order["status"], order["filled"], order["average"]) == ("closed", 0.01, float(last))
    balance = await ex.fetch_balance()
    assert Decimal(str(balance["USDT"]["total"])) == START_USDT - Decimal("0.01") * last
    assert Decimal(str(balance["BTC"]["total"])) == Decimal("0.01") * (1 - FEE)


async def test_a_resting_limit_fills_against_later_real_trades(ex: Any, sim: Simulator, trades_path: str) -> None:
    trades = first_trades(trades_path, 3000)
    # The highest price below the opening trade at which the next trades sell at least 0.002 BTC.
    qty = Decimal("0.002")
    below = sorted({p for p, _ in trades[1:] if p < trades[0][0]}, reverse=True)
    limit = next(level for level in below if sum(q for p, q in trades[1:] if p <= level) >= qty)
    order = await ex.create_order(SYMBOL, "limit", "buy", float(qty), float(limit))
    assert order["status"] == "open" and order["filled"] == 0
    assert [o["id"] for o in await ex.fetch_open_orders(SYMBOL)] == [order["id"]]
    assert (await ex.fetch_balance())["USDT"]["used"] == float(qty * limit)
    await control(sim, "POST", "/sim/advance", {"trades": 3000})
    filled = await ex.fetch_order(order["id"], SYMBOL)
    assert (filled["status"], filled["filled"], filled["average"]) == ("closed", float(qty), float(limit))
    mine = await ex.fetch_my_trades(SYMBOL)
    assert all(t["order"] == order["id"] and t["takerOrMaker"] == "maker" for t in mine)
    assert sum(Decimal(str(t["amount"])) for t in mine) == qty
    assert await ex.fetch_open_orders(SYMBOL) == []
    assert (await ex.fetch_balance())["USDT"]["used"] == 0


async def test_stop_loss_and_take_profit_trigger_on_real_trades(ex: Any, sim: Simulator, trades_path: str) -> None:
    trades = first_trades(trades_path, 3000)
    opening = trades[0][0]
    await ex.create_order(SYMBOL, "market", "buy", 0.01)
    stop = max(p for p, _ in trades[1:] if p < opening)  # the first dip below the opening triggers it
    target = min(p for p, _ in trades[1:] if p > opening)
    stop_loss = await ex.create_order(SYMBOL, "market", "sell", 0.004, None, {"stopLossPrice": float(stop)})
    take_profit = await ex.create_order(SYMBOL, "market", "sell", 0.004, None, {"takeProfitPrice": float(target)})
    assert [o["info"]["type"] for o in (stop_loss, take_profit)] == ["STOP_LOSS", "TAKE_PROFIT"]
    assert len(await ex.fetch_open_orders(SYMBOL)) == 2
    await control(sim, "POST", "/sim/advance", {"trades": 3000})
    for order, level, reached in ((stop_loss, stop, Decimal.__le__), (take_profit, target, Decimal.__ge__)):
        done = await ex.fetch_order(order["id"], SYMBOL)
        trigger_print = next(p for p, _ in trades[1:] if reached(p, level))
        assert (done["status"], done["filled"], done["average"]) == ("closed", 0.004, float(trigger_print))


async def test_immediate_or_cancel_limit_that_does_not_cross_expires(ex: Any) -> None:
    order = await ex.create_order(SYMBOL, "limit", "buy", 0.001, 30_000, {"timeInForce": "IOC"})
    assert (order["status"], order["filled"]) == ("expired", 0)
    assert (await ex.fetch_balance())["USDT"]["used"] == 0


async def test_cancel_frees_the_locked_quote(ex: Any) -> None:
    order = await ex.create_order(SYMBOL, "limit", "buy", 0.01, 30_000)
    assert (await ex.fetch_balance())["USDT"]["used"] == 300.0
    canceled = await ex.cancel_order(order["id"], SYMBOL, {"newClientOrderId": "bosun-cancel"})
    # As on Binance, the answer's clientOrderId is the cancel request's; the order's is origClientOrderId.
    assert (canceled["status"], canceled["clientOrderId"]) == ("canceled", "bosun-cancel")
    assert canceled["info"]["origClientOrderId"] == order["clientOrderId"]
    assert (await ex.fetch_order(order["id"], SYMBOL))["clientOrderId"] == order["clientOrderId"]
    assert (await ex.fetch_balance())["USDT"] == {"free": 100_000.0, "used": 0.0, "total": 100_000.0}
    with pytest.raises(ccxt.OrderNotFound):
        await ex.cancel_order(order["id"], SYMBOL)
    with pytest.raises(ccxt.OrderNotFound):
        await ex.fetch_order("999999", SYMBOL)


async def test_cancel_all_and_an_order_found_by_client_id(ex: Any) -> None:
    for n in range(3):
        await ex.create_order(SYMBOL, "limit", "buy", 0.001, 30_000 + n, {"clientOrderId": f"bosun-{n}"})
    found = await ex.fetch_order(None, SYMBOL, {"origClientOrderId": "bosun-1"})
    assert (found["clientOrderId"], found["price"]) == ("bosun-1", 30_001.0)
    assert len(await ex.fetch_open_orders()) == 3  # every symbol's
    assert len(await ex.cancel_all_orders(SYMBOL)) == 3
    assert await ex.fetch_open_orders(SYMBOL) == []


async def test_duplicate_client_order_id_while_open(ex: Any) -> None:
    await ex.create_order(SYMBOL, "limit", "buy", 0.001, 30_000, {"clientOrderId": "bosun-dup"})
    with pytest.raises(ccxt.InvalidOrder, match="Duplicate order sent"):
        await ex.create_order(SYMBOL, "limit", "buy", 0.001, 30_000, {"clientOrderId": "bosun-dup"})
    assert len(await ex.fetch_open_orders(SYMBOL)) == 1


async def test_bad_signature_and_unknown_key(sim: Simulator) -> None:
    for exchange in (client(ccxt, sim.url, secret="not-the-secret"), client(ccxt, sim.url, apiKey="not-the-key")):
        try:
            with pytest.raises(ccxt.AuthenticationError):
                await exchange.fetch_balance()
        finally:
            await exchange.close()


async def test_timestamp_outside_recv_window(ex: Any) -> None:
    ex.nonce = lambda: ex.milliseconds() - 20_000  # a client clock 20 s behind, with ccxt's 10 s window
    with pytest.raises(ccxt.InvalidNonce, match="recvWindow"):
        await ex.fetch_balance()


async def test_insufficient_balance(ex: Any) -> None:
    with pytest.raises(ccxt.InsufficientFunds):
        await ex.create_order(SYMBOL, "limit", "buy", 10, 60_000)  # 600,000 USDT
    with pytest.raises(ccxt.InsufficientFunds):
        await ex.create_order(SYMBOL, "market", "sell", 0.01)  # no BTC


async def test_filter_failures(ex: Any) -> None:
    with pytest.raises(ccxt.InvalidOrder, match="LOT_SIZE"):
        await ex.create_order(SYMBOL, "limit", "buy", 10_000_000, 1)
    with pytest.raises(ccxt.InvalidOrder, match="PRICE_FILTER"):
        await ex.create_order(SYMBOL, "limit", "sell", 0.001, 20_000_000)
    # ccxt maps -1013 "Filter failure: NOTIONAL" to BadRequest, not InvalidOrder.
    with pytest.raises(ccxt.BadRequest, match="NOTIONAL"):
        await ex.create_order(SYMBOL, "limit", "buy", 0.00001, 30_000)


# ----------------------------------------------------------------------------- faults


async def test_forced_rejections(ex: Any, sim: Simulator) -> None:
    await control(sim, "POST", "/sim/faults", {"reject_orders": "insufficient_balance"})
    with pytest.raises(ccxt.InsufficientFunds):
        await ex.create_order(SYMBOL, "market", "buy", 0.001)
    await control(sim, "POST", "/sim/faults", {"reject_orders": "LOT_SIZE"})
    with pytest.raises(ccxt.InvalidOrder, match="LOT_SIZE"):
        await ex.create_order(SYMBOL, "market", "buy", 0.001)
    await control(sim, "DELETE", "/sim/faults")
    assert (await ex.create_order(SYMBOL, "market", "buy", 0.001))["status"] == "closed"


async def test_latency_past_the_client_timeout_after_the_order_was_placed(ex: Any, sim: Simulator) -> None:
    await control(sim, "POST", "/sim/faults", {"latency_ms": 1500, "paths": ["/api/v3/order"]})
    ex.timeout = 300
    with pytest.raises(ccxt.RequestTimeout):
        await ex.create_order(SYMBOL, "limit", "buy", 0.001, 30_000, {"clientOrderId": "bosun-slow"})
    await control(sim, "DELETE", "/sim/faults")
    ex.timeout = 10_000
    open_orders = await ex.fetch_open_orders(SYMBOL)
    assert [o["clientOrderId"] for o in open_orders] == ["bosun-slow"]  # it is on the venue all the same


async def test_response_dropped_after_the_order_was_accepted(ex: Any, sim: Simulator) -> None:
    await control(sim, "POST", "/sim/faults", {"drop_order_responses": 1})
    with pytest.raises(ccxt.NetworkError):
        await ex.create_order(SYMBOL, "limit", "buy", 0.001, 30_000, {"clientOrderId": "bosun-lost"})
    # The client looks it up by client id before sending again: exactly one order on the venue.
    found = await ex.fetch_order(None, SYMBOL, {"origClientOrderId": "bosun-lost"})
    assert found["status"] == "open"
    with pytest.raises(ccxt.InvalidOrder, match="Duplicate order sent"):
        await ex.create_order(SYMBOL, "limit", "buy", 0.001, 30_000, {"clientOrderId": "bosun-lost"})
    assert len(await ex.fetch_open_orders(SYMBOL)) == 1


async def test_server_error(ex: Any, sim: Simulator) -> None:
    await control(sim, "POST", "/sim/faults", {"server_errors": 1, "server_error_status": 502})
    with pytest.raises(ccxt.ExchangeNotAvailable):
        await ex.fetch_balance()
    assert (await ex.fetch_balance())["USDT"]["total"] == 100_000.0  # one request only


@pytest.mark.parametrize("status", [429, 418])
async def test_throttled_with_retry_after(ex: Any, sim: Simulator, status: int) -> None:
    await control(sim, "POST", "/sim/faults", {"throttles": 2, "throttle_status": status, "retry_after_s": 7})
    for _ in range(2):
        with pytest.raises(ccxt.DDoSProtection):  # ccxt raises DDoSProtection for both 429 and 418
            await ex.create_order(SYMBOL, "market", "buy", 0.001)
        assert ex.last_response_headers["Retry-After"] == "7"
    assert (await ex.create_order(SYMBOL, "market", "buy", 0.001))["status"] == "closed"
    assert len(await ex.fetch_my_trades(SYMBOL)) == 1  # the throttled requests placed nothing


# ----------------------------------------------------------------------------- the user stream


async def raw_stream(sim: Simulator, ex: Any, http: aiohttp.ClientSession) -> aiohttp.ClientWebSocketResponse:
    """The classic user stream: a listen key from POST /api/v3/userDataStream, then /ws/<key>."""
    listen_key = (await ex.publicPostUserDataStream())["listenKey"]
    await ex.publicPutUserDataStream({"listenKey": listen_key})  # keep-alive
    return await http.ws_connect(sim.url.replace("http", "ws") + "/ws/" + listen_key)


async def next_events(ws: aiohttp.ClientWebSocketResponse, n: int) -> list[dict[str, Any]]:
    return [json.loads((await asyncio.wait_for(ws.receive(), 5)).data) for _ in range(n)]


async def test_listen_key_stream_sends_execution_reports_and_balances(ex: Any, sim: Simulator) -> None:
    async with aiohttp.ClientSession() as http, await raw_stream(sim, ex, http) as ws:
        order = await ex.create_order(SYMBOL, "market", "buy", 0.001)
        new, trade, position = await next_events(ws, 3)
        resting = await ex.create_order(SYMBOL, "limit", "buy", 0.001, 30_000, {"clientOrderId": "bosun-rest"})
        await ex.cancel_order(resting["id"], SYMBOL, {"newClientOrderId": "bosun-undo"})
        *_, canceled, _ = await next_events(ws, 4)
    assert (canceled["x"], canceled["c"], canceled["C"]) == ("CANCELED", "bosun-undo", "bosun-rest")
    assert (new["e"], new["x"], new["X"], new["i"]) == ("executionReport", "NEW", "NEW", int(order["id"]))
    assert (trade["x"], trade["X"], trade["l"], trade["z"]) == ("TRADE", "FILLED", "0.00100000", "0.00100000")
    assert trade["t"] == int((await ex.fetch_my_trades(SYMBOL))[0]["id"])
    assert position["e"] == "outboundAccountPosition" and {b["a"] for b in position["B"]} == {"BTC", "USDT"}


async def test_duplicated_and_reordered_execution_reports(ex: Any, sim: Simulator) -> None:
    async with aiohttp.ClientSession() as http, await raw_stream(sim, ex, http) as ws:
        await control(sim, "POST", "/sim/faults", {"duplicate_reports": True})
        await ex.create_order(SYMBOL, "market", "buy", 0.001)
        assert [e.get("x") for e in await next_events(ws, 5)] == ["NEW", "NEW", "TRADE", "TRADE", None]
        await control(sim, "POST", "/sim/faults", {"reorder_reports": True})
        await ex.create_order(SYMBOL, "market", "buy", 0.001)
        assert [e.get("x") for e in await next_events(ws, 3)] == ["TRADE", "NEW", None]


async def test_ccxt_pro_watch_orders_sees_a_fill(sim: Simulator) -> None:
    pro = client(ccxtpro, sim.url)
    try:
        await pro.load_markets()
        watching = asyncio.create_task(pro.watch_orders(SYMBOL))
        await wait_until(lambda: sim.streams.connections, "ccxt.pro subscribed to the user stream")
        order = await pro.create_order(SYMBOL, "market", "buy", 0.002)
        seen = await asyncio.wait_for(watching, 5)
        while seen[-1]["status"] != "closed":
            seen = await asyncio.wait_for(pro.watch_orders(SYMBOL), 5)
        assert (seen[-1]["id"], seen[-1]["filled"], seen[-1]["status"]) == (order["id"], 0.002, "closed")
    finally:
        await pro.close()


async def test_user_stream_dropped_mid_fill_then_fills_recovered_by_polling(ex: Any, sim: Simulator,
                                                                           trades_path: str) -> None:
    trades = first_trades(trades_path, 3000)
    qty = Decimal("0.05")  # more than most single trades: it fills over several
    limit = max(p for p, _ in trades[1:] if p < trades[0][0])
    order = await ex.create_order(SYMBOL, "limit", "buy", float(qty), float(limit))
    async with aiohttp.ClientSession() as http, await raw_stream(sim, ex, http) as ws:
        await control(sim, "POST", "/sim/faults", {"stream_drop_after": 1})
        await control(sim, "POST", "/sim/advance", {"trades": 3000})
        (first,) = await next_events(ws, 1)
        closed = await asyncio.wait_for(ws.receive(), 5)
    assert (first["x"], first["X"]) == ("TRADE", "PARTIALLY_FILLED")
    assert closed.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE)
    fills = await ex.fetch_my_trades(SYMBOL)
    polled = await ex.fetch_order(order["id"], SYMBOL)
    assert len(fills) > 1 and sum(Decimal(str(f["amount"])) for f in fills) == Decimal(str(polled["filled"]))


async def test_market_streams_carry_the_replayed_trades_and_closed_klines_as_ingest_reads_them(
        sim: Simulator) -> None:
    base = sim.url.replace("http", "ws")
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(base + "/stream?streams=btcusdt@trade/btcusdt@kline_1m") as ws:
            start = (await control(sim, "GET", "/sim/state"))["market_ms"]
            replayed = (await control(sim, "POST", "/sim/advance", {"until_ms": start + 180_000}))["replayed"]
            events = []
            while not any(isinstance(e, Bar) for e in events):
                events.append(parse_message((await asyncio.wait_for(ws.receive(), 5)).data))
        refused = await http.get(sim.url + "/stream?streams=ethusdt@trade")
        assert refused.status == 400 and "BTCUSDT" in (await refused.json())["msg"]
    trades = [e for e in events if isinstance(e, Trade)]
    [bar] = [e for e in events if isinstance(e, Bar)]
    assert replayed > len(trades) > 0 and [t.symbol for t in trades] == ["BTCUSDT"] * len(trades)
    assert [t.id for t in trades] == sorted({t.id for t in trades}, key=lambda i: int(i.rsplit(".", 1)[-1]))
    assert bar.ts_open % 60_000_000_000 == 0 and bar.interval == "1m"
    assert trades[0].ts_event < bar.ts_open  # a whole minute: not the one the subscription began inside
    in_bar = [t for t in trades if bar.ts_open <= t.ts_event < bar.ts_event]
    assert bar.volume == sum(t.qty for t in in_bar) and bar.close == in_bar[-1].price
    assert bar.high == max(t.price for t in in_bar) and bar.low == min(t.price for t in in_bar)
    assert abs(trades[0].ts_event / 1e6 - time.time() * 1000) < 180_000  # as fresh as a live venue's


async def wait_until(condition: Any, what: str, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def test_paced_replay_moves_the_market_with_the_clock(trades_path: str) -> None:
    config = sim_config(trades_path, USDT="1000")
    async with serving(msgspec.structs.replace(config, speed=100.0), Credentials(API_KEY, API_SECRET)) as paced:
        opened = (await control(paced, "GET", "/sim/state"))["market_ms"]
        # 100 x real time: a second of the file every 10 ms.
        await wait_until(lambda: paced.exchange.market_ms >= opened + 2_000, "two seconds of market time")
        assert paced.exchange.replay.replayed > 1


# ----------------------------------------------------------------------------- the command


async def test_cli_serves_ccxt_and_needs_its_credentials(trades_path: str) -> None:
    port = free_port()
    argv = [sys.executable, "-m", "bosun.apps.cli", "exchange-sim", "--data", trades_path, "--port", str(port),
            "--balance", "USDT=2500", "--speed", "0"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOSUN_SIM_")}
    missing = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30)
    assert missing.returncode == 2 and "BOSUN_SIM_API_KEY" in missing.stderr
    proc = subprocess.Popen(argv, env={**env, "BOSUN_SIM_API_KEY": API_KEY, "BOSUN_SIM_API_SECRET": API_SECRET},
                            stdout=subprocess.PIPE, text=True)
    exchange = client(ccxt, f"http://127.0.0.1:{port}")
    try:
        banner = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 20)  # type: ignore[union-attr]
        assert f"127.0.0.1:{port}" in banner and "BTCUSDT" in banner
        assert (await exchange.fetch_balance())["USDT"]["total"] == 2500.0
        assert API_KEY not in banner and API_SECRET not in banner
    finally:
        await exchange.close()
        proc.terminate()
        proc.wait(10)
