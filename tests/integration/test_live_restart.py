"""Restart reconciliation of a live account: execution and portfolio as real processes on a
private nats-server and a real PostgreSQL, trading through ccxt against the exchange simulator.
Each fault its own test: execution killed (-9) between submitting an order and the exchange's
answer; an order on the exchange that nobody intended; a position that lost its stop while
execution was down (re-armed, flattened or halted, as the venue's `on_unprotected` says); an
intent that cannot be committed (nothing sent, the approval not acked until it is)."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import asyncpg
import msgspec
import pytest

from bosun.apps import control
from bosun.runtime.nats_binding import ACK_WAIT_S, durable_name
from proto import subjects as sj
from proto import events as ev
from services.execution.orders import client_order_id
from services.execution.venues.dialects import dialect
from tests.builders import publish, service_status, target, until_status, until_trading
from tests.liveplatform import SYMBOL, TIMEOUT_S, Live, audited_reports, live_platform, until
from tests.natshelp import acked, stored_count
from tests.processes import kill_9


async def approve(live: Live, n: int, qty: str, **levels: Decimal) -> str:
    t = msgspec.structs.replace(target(n, qty, live.venue), **levels)
    await publish(live.nc, ev.TargetApproved(id=t.id, ts_event=t.ts_event, target=t))
    return t.id


async def trading_on(live: Live) -> None:
    await control.set_trading(live.nc, True)
    await until_trading(live.nc, "execution", True)


ORDER_PATH = {"binance": "/api/v3/order", "bybit": "/v5/order/create"}


@pytest.mark.parametrize("exchange_id", ["binance", "bybit"])  # the simulator's two dialects, one engine
async def test_kill_9_between_submit_and_answer_leaves_one_order_one_fill_and_trading_off(
        tmp_path: Path, fresh_database_url: str, exchange_id: str) -> None:
    async with live_platform(tmp_path, fresh_database_url, exchange_id=exchange_id) as live:
        await trading_on(live)
        # The exchange takes the order at once and answers 20 s later: execution is killed in between.
        await live.sim_control("POST", "/sim/faults", {"latency_ms": 20_000, "paths": [ORDER_PATH[exchange_id]]})
        tid = await approve(live, 1, "0.01")
        [trade] = await until("the order filled on the exchange", lambda: live.exchange.fetch_my_trades(SYMBOL))
        js = live.nc.jetstream()
        assert await stored_count(js, "ORDERS", "order.submit.>") == 1
        kill_9(live.execution.proc.pid)
        assert await stored_count(js, "ORDERS", "order.accepted.>") == 0  # killed before the answer

        await live.sim_control("DELETE", "/sim/faults")
        await live.execution.start(live.nc)
        assert (await service_status(live.nc, "execution"))["trading_enabled"] is False
        fill_id = f"{exchange_id}-{trade['id']}"
        assert await until("the fill booked by portfolio", live.booked_fills) == [fill_id]
        [report] = await until("the reconciliation audited", lambda: audited_reports(live.nc))
        assert report.done == ()  # the order was adopted, not placed again: nothing to mend

        orders = await live.all_orders()
        assert [o["clientOrderId"] for o in orders] == [client_order_id(tid, 1)]  # exactly one order
        assert await stored_count(js, "ORDERS", "order.filled.>") == 1
        assert (await service_status(live.nc, "execution"))["trading_enabled"] is False  # until a person resumes
        await trading_on(live)
        assert await live.booked_fills() == [fill_id]


@pytest.mark.parametrize("exchange_id", ["binance", "bybit"])  # the simulator's two dialects, one engine
async def test_an_order_nobody_intended_is_cancelled_at_reconciliation_and_reported(
        tmp_path: Path, fresh_database_url: str, exchange_id: str) -> None:
    async with live_platform(tmp_path, fresh_database_url, exchange_id=exchange_id) as live:
        stray = await live.exchange.create_order(SYMBOL, "limit", "buy", 0.001, 30_000,
                                                 {dialect(exchange_id).client_id_param: "by-hand-1"})
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
    await live.execution.logged("user stream subscribed")  # the start's look at the account is done first
    await trading_on(live)
    tid = await approve(live, 1, "0.01", stop_loss=Decimal("1000"))
    [stop] = await until("the stop on the exchange", lambda: live.exchange.fetch_open_orders(SYMBOL))
    assert (stop["clientOrderId"], stop["info"]["type"]) == (client_order_id(tid, 2), "STOP_LOSS")
    assert await until("the entry booked", live.booked_fills)
    await until_status(live.nc, "execution", "fills", 1)  # execution has it too: the restart reads on from it
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


async def test_an_approval_is_acked_and_its_order_sent_only_after_the_intent_is_committed(
        tmp_path: Path, fresh_database_url: str) -> None:
    async with live_platform(tmp_path, fresh_database_url) as live:
        await trading_on(live)
        conn = await asyncpg.connect(fresh_database_url)
        try:
            await conn.execute("ALTER TABLE execution.intents RENAME TO intents_away")  # every commit now fails
            tid = await approve(live, 1, "0.01")
            assert await asyncio.to_thread(live.execution.proc.wait, TIMEOUT_S) != 0  # execution stops on it
            js = live.nc.jetstream()
            assert await stored_count(js, "ORDERS", "order.submit.>") == 0  # nothing decided went out
            consumer = durable_name("execution", sj.APPROVED)
            assert (await js.consumer_info("TARGETS", consumer)).ack_floor.consumer_seq == 0  # not acked
            assert await live.exchange.fetch_orders(SYMBOL) == []
            await conn.execute("ALTER TABLE execution.intents_away RENAME TO intents")
        finally:
            await conn.close()
        await live.execution.start(live.nc)
        # Delivered again at once (the consumer resumes from its ack floor, well before its ack wait),
        # and committed now; after any restart trading is off, so this approval, which adds, is refused.
        await acked(js, "TARGETS", consumer, 1, timeout=TIMEOUT_S)
        assert TIMEOUT_S < ACK_WAIT_S
        assert await stored_count(js, "ORDERS", "order.rejected.>") == 1
        assert await live.exchange.fetch_orders(SYMBOL) == []
        await trading_on(live)
        tid = await approve(live, 2, "0.01")  # the store works again: an approval goes out once
        [order] = await until("the order on the exchange", lambda: live.exchange.fetch_orders(SYMBOL))
        assert order["clientOrderId"] == client_order_id(tid, 1)
        assert await stored_count(js, "ORDERS", "order.submit.>") == 1
