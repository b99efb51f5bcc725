"""The live venue's ccxt edge against the exchange simulator (real ccxt, real HTTP, real BTCUSDT
trades): orders placed once whatever the network does, refusals named, fills read back once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from itertools import islice

import aiohttp
import msgspec
import pytest

from bosun.apps.exchange_sim.auth import Credentials
from bosun.apps.exchange_sim.server import Simulator, serving
from bosun.runtime.clock import LiveClock
from proto.events import OrderAccepted, OrderCanceled, OrderFilled, OrderRejected, SubmitOrder
from services.execution.config import ExecutionConfig, VenueConfig
from services.execution.venues import ccxt_edge
from services.execution.venues.ccxt_edge import CcxtEdge
from services.execution.venues.live import LiveAdapter
from services.execution.venues.user_stream import AccountFills, follow, followers
from services.ingest.files import read_trades
from tests.datafiles import BTC_TRADES, data_file
from tests.simhelp import API_KEY, API_SECRET, sim_config

ENV = {"BOSUN_BINANCE_API_KEY": API_KEY, "BOSUN_BINANCE_API_SECRET": API_SECRET,
       "BOSUN_BYBIT_API_KEY": API_KEY, "BOSUN_BYBIT_API_SECRET": API_SECRET}
BOTH = pytest.mark.parametrize("venue", ["binance", "bybit"])  # the simulator's two dialects, one engine
# Each dialect's order placement and trade list, for the faults' `paths` and for counting requests.
ORDER_PATH = {"binance": "/api/v3/order", "bybit": "/v5/order/create"}
TRADES_PATH = {"binance": "/api/v3/myTrades", "bybit": "/v5/execution/list"}


@pytest.fixture
def venue() -> str:
    """The exchange the edge trades on (a venue of that name); tests marked BOTH run on each."""
    return "binance"


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with serving(sim_config(str(data_file(BTC_TRADES)), USDT="100000"), Credentials(API_KEY, API_SECRET)) as sim:
        yield sim


@pytest.fixture
async def edge(sim: Simulator, venue: str, monkeypatch) -> AsyncIterator[CcxtEdge]:
    monkeypatch.setattr(ccxt_edge, "BACKOFF_S", 0.01)  # the backoff's shape is the same, only shorter
    monkeypatch.setattr(ccxt_edge, "MAX_BACKOFF_S", 0.05)
    config = ExecutionConfig(venues={"alice": {venue: VenueConfig(kind="live", exchange=venue, api_url=sim.url)}})
    edge = CcxtEdge(config, environ=ENV)
    try:
        yield edge
    finally:
        await edge.close()


def order(n: int = 1, qty: str = "0.01", order_type: str = "market", limit: str | None = None,
          side: str = "buy", venue: str = "binance") -> SubmitOrder:
    return SubmitOrder(id=f"bs-test-{n}-{time.time_ns() % 10**9}", ts_event=time.time_ns(), client="alice",
                       venue=venue, symbol="BTCUSDT", side=side, qty=Decimal(qty), order_type=order_type,
                       limit_price=Decimal(limit) if limit else None, target_id=f"t{n}")


async def control(sim: Simulator, method: str, path: str, body: object = None) -> dict:
    async with aiohttp.ClientSession() as http, http.request(method, sim.url + path, json=body) as response:
        assert response.status == 200, await response.text()
        return await response.json()


@BOTH
async def test_a_market_order_is_accepted_and_its_fill_read_back_once(sim: Simulator, edge: CcxtEdge,
                                                                      venue: str) -> None:
    await control(sim, "POST", "/sim/advance", {"trades": 10})
    placed = order(venue=venue)
    [accepted] = await edge.place(placed)
    assert isinstance(accepted, OrderAccepted) and accepted.client_order_id == placed.id
    [fill] = await edge.fills()
    assert isinstance(fill, OrderFilled) and fill.client_order_id == placed.id
    assert (fill.side, fill.qty) == ("buy", Decimal("0.01")) and fill.fee > 0
    again = await edge.fills()
    assert [f.id for f in again] in ([], [fill.id])  # read again at most, never a new id: published once by id


async def test_an_order_is_acknowledged_when_the_exchanges_answer_came(sim: Simulator, edge: CcxtEdge) -> None:
    """OrderAccepted carries the time the answer reached us, so order-to-ack reads the venue's
    delay: here the simulator answers 300 ms after it took the order."""
    await control(sim, "POST", "/sim/advance", {"trades": 10})
    await control(sim, "POST", "/sim/faults", {"latency_ms": 300, "paths": ["/api/v3/order"]})
    placed = order(3, order_type="limit", limit="1000")
    [accepted] = await edge.place(placed)
    answered = time.time_ns()
    assert isinstance(accepted, OrderAccepted)
    assert placed.ts_event + 300_000_000 <= accepted.ts_event <= answered


@BOTH
async def test_an_answer_lost_after_the_exchange_took_the_order_places_it_once(sim: Simulator,
                                                                                edge: CcxtEdge, venue: str) -> None:
    await control(sim, "POST", "/sim/advance", {"trades": 10})
    await control(sim, "POST", "/sim/faults", {"drop_order_responses": 1})
    placed = order(2, order_type="limit", limit="1000", venue=venue)  # far below the market: it rests
    [accepted] = await edge.place(placed)
    assert isinstance(accepted, OrderAccepted)
    ex = edge.accounts[("alice", venue)].exchange
    resting = await ex.fetch_open_orders("BTC/USDT")
    assert [o["clientOrderId"] for o in resting] == [placed.id]  # exactly one on the venue


def paced_edge(sim: Simulator, venue: str = "binance", **config: object) -> CcxtEdge:
    return CcxtEdge(ExecutionConfig(venues={"alice": {venue: VenueConfig(kind="live", exchange=venue, api_url=sim.url,
                                                                         **config)}}), environ=ENV)


def order_posts(sim: Simulator, venue: str = "binance") -> list:
    return [r for r in sim.rest.requests if (r.method, r.path) == ("POST", ORDER_PATH[venue])]


@BOTH
async def test_429_with_retry_after_backs_off_then_succeeds_never_past_the_budget(sim: Simulator, monkeypatch,
                                                                                  venue: str) -> None:
    monkeypatch.setattr(ccxt_edge, "BACKOFF_S", 0.01)
    monkeypatch.setattr(ccxt_edge, "MAX_BACKOFF_S", 0.05)
    await control(sim, "POST", "/sim/advance", {"trades": 10})
    await control(sim, "POST", "/sim/faults", {"throttles": 2, "throttle_status": 429, "retry_after_s": 1,
                                               "paths": [ORDER_PATH[venue]]})
    edge = paced_edge(sim, venue, order_budget=3, order_budget_window_s=2.0)
    try:
        first = order(3, order_type="limit", limit="1000", venue=venue)
        second = order(33, order_type="limit", limit="1001", venue=venue)
        [accepted] = await edge.place(first)
        [also] = await edge.place(second)  # the budget is spent by the three tries of the first: it waits its turn
        resting = await edge.accounts[("alice", venue)].exchange.fetch_open_orders("BTC/USDT")
    finally:
        await edge.close()
    assert isinstance(accepted, OrderAccepted) and isinstance(also, OrderAccepted)
    assert sorted(o["clientOrderId"] for o in resting) == sorted([first.id, second.id])  # one order each
    posts = order_posts(sim, venue)
    assert [r.status for r in posts] == [429, 429, 200, 200]
    for throttled, after in zip(posts, posts[1:3]):
        assert after.arrived_s - throttled.arrived_s >= 1.0  # the exchange's Retry-After, kept
    for i, post in enumerate(posts):  # never more than the budget in any window
        assert sum(1 for r in posts[i:] if r.arrived_s - post.arrived_s < 2.0) <= 3


async def test_a_retry_after_longer_than_the_wait_bound_rejects_the_order_unsent(sim: Simulator) -> None:
    await control(sim, "POST", "/sim/advance", {"trades": 10})
    await control(sim, "POST", "/sim/faults", {"throttles": 1, "throttle_status": 418, "retry_after_s": 120,
                                               "paths": ["/api/v3/order"]})
    edge = paced_edge(sim)
    try:
        [rejected] = await edge.place(order(34, order_type="limit", limit="1000"))
    finally:
        await edge.close()
    assert isinstance(rejected, OrderRejected) and "order not sent" in rejected.reason
    assert "no order request for 1" in rejected.reason and len(order_posts(sim)) == 1


async def test_a_replace_waits_the_minimum_interval_after_its_cancel(sim: Simulator) -> None:
    await control(sim, "POST", "/sim/advance", {"trades": 10})
    edge = paced_edge(sim, min_replace_interval_s=0.3)
    try:
        first = order(35, order_type="limit", limit="1000")
        await edge.place(first)
        await edge.cancel("alice", "binance", "BTCUSDT", first.id, "superseded")
        [replaced] = await edge.place(order(36, order_type="limit", limit="1001"))
    finally:
        await edge.close()
    assert isinstance(replaced, OrderAccepted)
    [cancel] = [r for r in sim.rest.requests if (r.method, r.path) == ("DELETE", "/api/v3/order")]
    assert order_posts(sim)[-1].arrived_s - cancel.arrived_s >= 0.3


async def test_refusals_name_the_rule_or_the_exchanges_reason_and_hold_no_key(sim: Simulator,
                                                                               edge: CcxtEdge) -> None:
    await control(sim, "POST", "/sim/advance", {"trades": 10})
    [too_small] = await edge.place(order(4, qty="0.0000001"))
    assert isinstance(too_small, OrderRejected) and "minimum" in too_small.reason
    [too_big] = await edge.place(order(5, qty="50", order_type="limit", limit="60000"))  # 3M USDT on 100k
    assert isinstance(too_big, OrderRejected) and "InsufficientFunds" in too_big.reason
    [stop] = await edge.place(order(6, order_type="stop_market"))
    assert isinstance(stop, OrderRejected) and stop.reason == "stop_market needs a stop_price"
    [on_close] = await edge.place(order(7, order_type="market_on_close"))
    assert isinstance(on_close, OrderRejected) and "not placed on live venues yet" in on_close.reason
    gtd = msgspec.structs.replace(order(8, order_type="limit", limit="1000"), time_in_force="GTD",
                                  expire_ns=time.time_ns() + 10**10)
    [expiring] = await edge.place(gtd)
    assert isinstance(expiring, OrderRejected) and "GTD orders are not placed on live venues yet" in expiring.reason
    for rejected in (too_small, too_big, stop, on_close, expiring):
        assert API_KEY not in rejected.reason and API_SECRET not in rejected.reason


@BOTH
async def test_cancel_and_cancel_all_leave_nothing_open(sim: Simulator, edge: CcxtEdge, venue: str) -> None:
    await control(sim, "POST", "/sim/advance", {"trades": 10})
    first = order(7, order_type="limit", limit="1000", venue=venue)
    second = order(8, order_type="limit", limit="1001", venue=venue)
    await edge.place(first)
    await edge.place(second)
    [canceled] = await edge.cancel("alice", venue, "BTCUSDT", first.id, "superseded")
    assert isinstance(canceled, OrderCanceled) and canceled.client_order_id == first.id
    again = await edge.cancel("alice", venue, "BTCUSDT", first.id, "again")  # cancelled already: the same id
    assert [c.id for c in again] in ([], [canceled.id])
    rest = await edge.cancel_all("alice", venue, "BTCUSDT", "kill_switch")
    assert [c.client_order_id for c in rest] == [second.id]
    ex = edge.accounts[("alice", venue)].exchange
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


# ----------------------------------------------------------------------------- fills: user stream and polling


class Published:
    """An outbox that keeps what the LiveAdapter publishes (what reaches portfolio)."""

    def __init__(self) -> None:
        self.events: list[object] = []
        self.changed = asyncio.Event()

    def publish(self, message: object) -> None:
        self.events.append(message)
        self.changed.set()

    def effect(self, effect: object) -> None:
        raise AssertionError(f"no effect expected here: {effect!r}")

    def set_trading_enabled(self, enabled: bool) -> None:
        raise AssertionError("the live adapter never flips the kill switch")

    def fills(self) -> list[OrderFilled]:
        return [e for e in self.events if isinstance(e, OrderFilled)]

    async def until_filled(self, qty: Decimal, timeout: float = 10.0) -> list[OrderFilled]:
        async with asyncio.timeout(timeout):
            while sum(f.qty for f in self.fills()) < qty:
                self.changed.clear()
                await self.changed.wait()
        return self.fills()


@pytest.fixture
async def following(edge: CcxtEdge, venue: str) -> AsyncIterator[tuple[AccountFills, Published]]:
    """The edge's fill followers feeding a real LiveAdapter, which publishes each fill once."""
    published = Published()
    config = ExecutionConfig(venues={"alice": {venue: VenueConfig(kind="live", exchange=venue, poll_s=0.05)}})
    adapter = LiveAdapter(LiveClock(), published, config)
    adapter.on_start()

    async def deliver(fills) -> None:
        adapter.on_fills_found(fills)

    [account] = followers(edge, deliver)
    task = asyncio.create_task(follow([account]))
    try:
        await until(lambda: account.up, "the user stream subscribed")
        yield account, published
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def until(condition, what: str, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)  # a condition on another task's state: polled, bounded by the timeout


QTY = Decimal("0.05")  # more than most single trades: it fills over several


async def a_buy_filled_bit_by_bit(sim: Simulator, edge: CcxtEdge, n: int, faults: dict | None = None,
                                  venue: str = "binance") -> tuple[SubmitOrder, OrderAccepted]:
    """A limit buy of QTY below the market, placed; then, with `faults` on, 3,000 real trades that
    fill it bit by bit."""
    await control(sim, "POST", "/sim/advance", {"trades": 10})
    trades = [t.price for t in islice(read_trades(str(data_file(BTC_TRADES))), 3000)]
    placed = order(n, qty=str(QTY), order_type="limit", limit=str(max(p for p in trades[11:] if p < trades[10])),
                   venue=venue)
    [accepted] = await edge.place(placed)
    if faults:
        await control(sim, "POST", "/sim/faults", faults)
    await control(sim, "POST", "/sim/advance", {"trades": 3000})
    return placed, accepted


@BOTH
async def test_partial_fills_come_from_the_user_stream_summed_exactly_and_polling_rests(
        sim: Simulator, edge: CcxtEdge, following, venue: str) -> None:
    account, published = following
    polls_before = sum(1 for r in sim.rest.requests if r.path == TRADES_PATH[venue])
    placed, accepted = await a_buy_filled_bit_by_bit(sim, edge, 20, venue=venue)
    fills = await published.until_filled(QTY)
    assert len(fills) > 1 and sum(f.qty for f in fills) == QTY  # partial fills, summed exactly
    assert len({f.id for f in fills}) == len(fills) and {f.client_order_id for f in fills} == {placed.id}
    ex = account.account.exchange
    assert Decimal(str((await ex.fetch_order(accepted.venue_order_id, "BTC/USDT"))["filled"])) == QTY
    assert sum(1 for r in sim.rest.requests if r.path == TRADES_PATH[venue]) == polls_before  # the stream did it
    assert account.drops == 0


@BOTH
async def test_the_user_stream_dropped_mid_fill_every_fill_is_recovered_by_polling_once(
        sim: Simulator, edge: CcxtEdge, following, venue: str) -> None:
    account, published = following
    _, accepted = await a_buy_filled_bit_by_bit(sim, edge, 21, {"stream_drop_after": 2}, venue)  # 2 events, the cut
    fills = await published.until_filled(QTY)
    assert account.drops >= 1
    assert sum(f.qty for f in fills) == QTY and len({f.id for f in fills}) == len(fills)  # none lost, none twice
    venue_trades = await account.account.exchange.fetch_my_trades("BTC/USDT")
    assert sorted(f.id for f in fills) == sorted(f"{venue}-{t['id']}" for t in venue_trades
                                                 if t["order"] == accepted.venue_order_id)
    await until(lambda: account.up, "the user stream subscribed again")


@BOTH
@pytest.mark.parametrize("fault", ["duplicate_reports", "reorder_reports"])
async def test_a_duplicated_or_out_of_order_execution_report_changes_nothing(
        sim: Simulator, edge: CcxtEdge, following, fault: str, venue: str) -> None:
    account, published = following
    await a_buy_filled_bit_by_bit(sim, edge, 22, {fault: True}, venue)
    fills = await published.until_filled(QTY)
    assert sum(f.qty for f in fills) == QTY and len({f.id for f in fills}) == len(fills)
    assert sim.streams.events_sent > 0 and account.drops == 0


async def test_a_throttled_poll_waits_the_retry_after_before_polling_again(sim: Simulator, edge: CcxtEdge) -> None:
    await control(sim, "POST", "/sim/advance", {"trades": 10})
    await edge.place(order(40))  # a market to poll
    await control(sim, "POST", "/sim/faults", {"throttles": 1, "throttle_status": 429, "retry_after_s": 60,
                                               "paths": ["/api/v3/myTrades"]})
    assert await edge.fills() == []  # throttled
    assert await edge.fills() == []  # held: not asked again
    assert [r.status for r in sim.rest.requests if r.path == "/api/v3/myTrades"] == [429]
def leg(n: int, order_type: str, side: str = "sell", oco: str | None = "g1", venue: str = "binance",
        stop_price: str = "1000") -> SubmitOrder:
    """A bracket's leg: closes the position when its trigger is reached."""
    return msgspec.structs.replace(order(n, qty="0", order_type=order_type, side=side, venue=venue),
                                   stop_price=Decimal(stop_price), close_position=True, oco=oco)


STOP_KIND = {"binance": ("type", "STOP_LOSS"), "bybit": ("stopOrderType", "tpslOrder")}  # what the venue says


@BOTH
async def test_a_stop_closing_a_spot_position_sells_what_the_account_holds(sim: Simulator, edge: CcxtEdge,
                                                                           venue: str) -> None:
    await control(sim, "POST", "/sim/advance", {"trades": 10})
    await edge.place(order(1, qty="0.01", venue=venue))
    ex = edge.accounts[("alice", venue)].exchange
    held = (await ex.fetch_balance())["BTC"]["free"]  # 0.01 less the fee taken in BTC
    [accepted] = await edge.place(stop := leg(2, "stop_market", venue=venue))
    assert isinstance(accepted, OrderAccepted)
    [placed] = await ex.fetch_open_orders("BTC/USDT")
    field, kind = STOP_KIND[venue]
    assert (placed["clientOrderId"], placed["info"][field], placed["amount"]) == (stop.id, kind, held)
    # The stop locked the balance: a take-profit placed alone beside it (not with it, as an OCO order
    # list: test_live_bracket.py), and a buy-side leg, are refused by name.
    [take_profit] = await edge.place(leg(3, "take_profit_market", venue=venue))
    assert isinstance(take_profit, OrderRejected) and "another leg of OCO group g1 holds it" in take_profit.reason
    [short] = await edge.place(leg(4, "stop_market", side="buy", venue=venue))
    assert isinstance(short, OrderRejected) and "holds no short position" in short.reason
    [again] = await edge.place(stop, look_first=True)  # after a restart: found, not placed twice
    assert isinstance(again, OrderAccepted) and len(await ex.fetch_open_orders("BTC/USDT")) == 1


async def test_an_order_from_before_a_restart_is_not_sent_when_the_exchange_cannot_say(sim: Simulator,
                                                                                     edge: CcxtEdge) -> None:
    await control(sim, "POST", "/sim/advance", {"trades": 10})
    await control(sim, "POST", "/sim/faults", {"server_errors": 99, "paths": ["/api/v3/order"]})
    [refused] = await edge.place(order(8), look_first=True)
    assert isinstance(refused, OrderRejected) and "could not say whether it holds the order" in refused.reason
    await control(sim, "DELETE", "/sim/faults")
    ex = edge.accounts[("alice", "binance")].exchange
    assert await ex.fetch_orders("BTC/USDT") == []  # nothing was sent


MISSED = {"binance": "expired", "bybit": "canceled"}  # an IOC / FOK that did not fill, as ccxt reads each


@BOTH
async def test_ioc_and_fok_limits_go_out_with_their_time_in_force_and_what_does_not_fill_at_once_is_canceled(
        sim: Simulator, edge: CcxtEdge, venue: str) -> None:
    await control(sim, "POST", "/sim/advance", {"trades": 10})
    account = edge.accounts[("alice", venue)]
    ex = account.exchange
    for n, tif in ((20, "IOC"), (21, "FOK")):
        missed = msgspec.structs.replace(order(n, order_type="limit", limit="1000", venue=venue), time_in_force=tif)
        accepted, canceled = await edge.place(missed)
        assert isinstance(accepted, OrderAccepted) and isinstance(canceled, OrderCanceled)
        assert canceled.client_order_id == missed.id and canceled.reason.startswith(f"{tif}: ")
        crossing = msgspec.structs.replace(order(n + 10, order_type="limit", limit="90000", venue=venue),
                                           time_in_force=tif)
        assert [type(e) for e in await edge.place(crossing)] == [OrderAccepted]  # filled at once, in full
        for placed, status in ((missed, MISSED[venue]), (crossing, "closed")):
            on_exchange = await account.dialect.fetch_by_client_id(ex, "BTC/USDT", placed.id)
            assert (on_exchange["info"]["timeInForce"], on_exchange["status"]) == (tif, status)
    filled = await edge.fills()  # the crossing ones, in full; nothing of those that missed
    assert sorted((f.client_order_id.split("-")[2], f.qty) for f in filled) == [("30", Decimal("0.01")),
                                                                                  ("31", Decimal("0.01"))]
    assert await ex.fetch_open_orders("BTC/USDT") == []
    [fok_market] = await edge.place(msgspec.structs.replace(order(22, venue=venue), time_in_force="FOK"))
    assert isinstance(fok_market, OrderRejected) and "FOK orders are placed on live venues as limit orders only" in (
        fok_market.reason)
    assert [type(e) for e in await edge.place(msgspec.structs.replace(order(23, venue=venue), time_in_force="IOC"))
            ] == [OrderAccepted]  # an IOC market order is a market order


async def test_a_post_only_limit_rests_as_a_limit_maker_and_one_that_would_take_is_refused(
        sim: Simulator, edge: CcxtEdge) -> None:
    await control(sim, "POST", "/sim/advance", {"trades": 10})
    ex = edge.accounts[("alice", "binance")].exchange
    resting = msgspec.structs.replace(order(40, order_type="limit", limit="1000"), post_only=True)
    assert [type(e) for e in await edge.place(resting)] == [OrderAccepted]
    on_exchange = await ex.fetch_order(None, "BTC/USDT", {"origClientOrderId": resting.id})
    assert (on_exchange["info"]["type"], on_exchange["status"]) == ("LIMIT_MAKER", "open")
    taking = msgspec.structs.replace(order(41, order_type="limit", limit="90000"), post_only=True)
    [refused] = await edge.place(taking)
    assert isinstance(refused, OrderRejected) and "would immediately match and take" in refused.reason
    assert [o["clientOrderId"] for o in await ex.fetch_open_orders("BTC/USDT")] == [resting.id]
    assert await edge.fills() == []  # a post-only order never took


async def test_a_bracket_on_bybit_spot_places_its_stop_alone_and_refuses_the_take_profit_by_name(
        sim: Simulator) -> None:
    """Bybit spot has no OCO order list: the stop-loss goes out as a TP/SL order over what is held,
    the take-profit is refused naming why, and a fill after it resizes nothing (the stop sold all)."""
    await control(sim, "POST", "/sim/advance", {"trades": 10})
    edge = paced_edge(sim, "bybit")
    try:
        await edge.place(order(1, qty="0.01", venue="bybit"))
        stop = leg(2, "stop_market", venue="bybit")
        take_profit = leg(3, "take_profit_market", venue="bybit", stop_price="90000")
        placed, refused = await edge.place_bracket(stop, take_profit)
        assert isinstance(placed, OrderAccepted) and placed.client_order_id == stop.id
        assert isinstance(refused, OrderRejected) and refused.client_order_id == take_profit.id
        assert "another leg of OCO group g1 holds it" in refused.reason
        assert await edge.resize_bracket(stop, take_profit) == []
        ex = edge.accounts[("alice", "bybit")].exchange
        [working] = await ex.fetch_open_orders("BTC/USDT")
        assert (working["clientOrderId"], working["info"]["stopOrderType"]) == (stop.id, "tpslOrder")
        await control(sim, "POST", "/sim/advance", {"trades": 3000})  # nothing trades at 1,000: it waits
        assert [o["clientOrderId"] for o in await ex.fetch_open_orders("BTC/USDT")] == [stop.id]
    finally:
        await edge.close()
