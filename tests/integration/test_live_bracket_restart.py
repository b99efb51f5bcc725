"""A bracket on a live spot account through the whole of execution: execution and portfolio as real
processes on a private nats-server and a real PostgreSQL, trading through ccxt against the exchange
simulator. The stop-loss and take-profit of an approved target go out as one OCO order list; the
leg that fills closes the position once and the other is gone, whether execution was running or
down when it happened."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from services.execution.orders import client_order_id
from tests.builders import service_status
from tests.integration.test_live_restart import approve, trading_on
from tests.liveplatform import SYMBOL, Live, audited_reports, live_platform, until

TICK = Decimal("0.01")


async def bracketed(live: Live, stop_loss: Decimal, take_profit: Decimal) -> tuple[str, list[dict]]:
    """Long 0.01 with both levels; (its target id, the two legs on the exchange)."""
    await live.execution.logged("user stream subscribed")  # once the start's look at the account is done
    await trading_on(live)
    tid = await approve(live, 1, "0.01", stop_loss=stop_loss, take_profit=take_profit)
    legs = await until("both legs on the exchange", lambda: _two_open(live))
    assert {(o["clientOrderId"], o["info"]["type"]) for o in legs} == {
        (client_order_id(tid, 2), "STOP_LOSS"), (client_order_id(tid, 3), "TAKE_PROFIT")}
    assert len({o["info"]["orderListId"] for o in legs}) == 1  # one OCO order list
    assert await until("the entry booked", live.booked_fills)
    return tid, legs


def last_price(live: Live) -> Decimal:
    return Decimal(live.sim.exchange.last_price["BTCUSDT"])


async def until_a_leg_fills(live: Live) -> None:
    while await live.exchange.fetch_open_orders(SYMBOL):
        assert (await live.sim_control("POST", "/sim/advance", {"trades": 200}))["replayed"], "no leg triggered"


async def one_sell(live: Live, leg: str) -> None:
    """The account sold once, by `leg`, all it held; the other leg expired unfilled."""
    orders = {o["clientOrderId"]: o for o in await live.exchange.fetch_orders(SYMBOL)}
    sells = [t for t in await live.exchange.fetch_my_trades(SYMBOL) if t["side"] == "sell"]
    assert [t["order"] for t in sells] == [orders[leg]["id"]]
    assert [(o["status"], o["filled"]) for c, o in orders.items() if o["side"] == "sell" and c != leg] == [
        ("expired", 0)]
    assert (await live.exchange.fetch_balance())["BTC"]["total"] == 0


async def until_execution_holds_no_order(live: Live) -> None:
    await until("execution's book without the other leg",
                lambda: _empty(service_status(live.nc, "execution")))


async def test_the_take_profit_hit_leaves_no_stop_and_closes_the_position_once(
        tmp_path: Path, fresh_database_url: str) -> None:
    async with live_platform(tmp_path, fresh_database_url) as live:
        tid, _ = await bracketed(live, Decimal("1000"), last_price(live) + 5 * TICK)
        await until_a_leg_fills(live)
        assert len(await until("the take-profit booked", lambda: _two(live.booked_fills))) == 2
        await one_sell(live, client_order_id(tid, 3))
        await until_execution_holds_no_order(live)


async def test_a_take_profit_hit_while_execution_is_down_is_reconciled_on_start(
        tmp_path: Path, fresh_database_url: str) -> None:
    async with live_platform(tmp_path, fresh_database_url) as live:
        tid, _ = await bracketed(live, Decimal("1000"), last_price(live) + 5 * TICK)
        live.execution.stop()
        await until_a_leg_fills(live)
        await live.execution.start(live.nc)
        stop = client_order_id(tid, 2)
        [report] = await until("the reconciliation audited", lambda: audited_reports(live.nc))
        assert report.found[0].startswith("1 fills missed while down")
        # The book keeps the dust of the fee the exchange took in BTC on the buy: shown, not acted on.
        assert report.found[1:] == (f"order {stop} open in the book, not on the venue",
                                    "position: execution 0.00001, venue 0")
        assert report.done == (f"closed {stop} in the book",)  # flat: no stop to re-arm, nothing placed
        assert len(await until("the take-profit booked", lambda: _two(live.booked_fills))) == 2
        await one_sell(live, client_order_id(tid, 3))
        await until_execution_holds_no_order(live)
        assert (await service_status(live.nc, "execution"))["trading_enabled"] is False


async def test_a_bracket_survives_a_restart_adopted_and_its_stop_hit_later_leaves_no_take_profit(
        tmp_path: Path, fresh_database_url: str) -> None:
    async with live_platform(tmp_path, fresh_database_url) as live:
        tid, legs = await bracketed(live, last_price(live) - 5 * TICK, Decimal("70000"))
        await live.restart_execution(kill=True)
        [report] = await until("the reconciliation audited", lambda: audited_reports(live.nc))
        assert report.done == ()  # both legs found where the book has them: adopted, nothing placed
        assert sorted(o["id"] for o in await live.exchange.fetch_open_orders(SYMBOL)) == sorted(o["id"] for o in legs)
        await until_a_leg_fills(live)
        assert len(await until("the stop booked", lambda: _two(live.booked_fills))) == 2
        await one_sell(live, client_order_id(tid, 2))
        await until_execution_holds_no_order(live)


async def _two_open(live: Live) -> list[dict] | None:
    found = await live.exchange.fetch_open_orders(SYMBOL)
    return found if len(found) == 2 else None


async def _two(read) -> list[str] | None:
    fills = await read()
    return fills if len(fills) >= 2 else None


async def _empty(status) -> bool:
    return (await status)["open_orders"] == {}


