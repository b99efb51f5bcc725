"""A bracket on a live spot account (real ccxt, real HTTP, the exchange simulator on real BTCUSDT
trades): the stop-loss and take-profit of a position go out as one OCO order list over the one
balance, so the exchange lets only one of them fill; the other is then settled as closed."""

from __future__ import annotations

from decimal import Decimal

import msgspec
from bosun.apps.exchange_sim.server import Simulator
from proto.events import CancelOrder, OrderAccepted, OrderCanceled, OrderFilled, OrderRejected, SubmitOrder
from services.execution.venues.ccxt_edge import CcxtEdge
from services.execution.venues.live import CancelVenueOrder, PlaceBracket, PlaceOrder, ResizeBracket
from tests.integration.test_live_venue import control, edge, order, sim, venue  # noqa: F401 (fixtures)

SYMBOL = "BTC/USDT"


def leg(n: int, order_type: str, stop_price: Decimal, group: str) -> SubmitOrder:
    return msgspec.structs.replace(order(n, qty="0", order_type=order_type, side="sell"), stop_price=stop_price,
                                   close_position=True, oco=group)


async def long_with_levels(sim: Simulator, edge: CcxtEdge, group: str, *, below: str, above: str
                           ) -> tuple[SubmitOrder, SubmitOrder, Decimal]:
    """Long 0.01 BTC (less the fee the exchange takes in BTC); the bracket's legs with their stops
    `below` / `above` ticks (or a share, when it has a point) away from the last price."""
    await control(sim, "POST", "/sim/advance", {"trades": 10})
    await edge.place(order(1, qty="0.01"))
    last = Decimal(sim.exchange.last_price["BTCUSDT"])

    def away(spec: str, sign: int) -> Decimal:
        return (last * (1 + sign * Decimal(spec)) if "." in spec else last + sign * Decimal(spec) / 100).quantize(
            Decimal("0.01"))

    held = Decimal(str((await edge.accounts[("alice", "binance")].exchange.fetch_balance())["BTC"]["free"]))
    return (leg(2, "stop_market", away(below, -1), group), leg(3, "take_profit_market", away(above, 1), group),
            held)


async def open_orders(edge: CcxtEdge) -> list[dict]:
    return await edge.accounts[("alice", "binance")].exchange.fetch_open_orders(SYMBOL)


async def until_none_open(sim: Simulator, edge: CcxtEdge, most: int = 100_000) -> None:
    """Replays the market until the exchange holds no open order (bounded by the data)."""
    replayed = 0
    while await open_orders(edge):
        assert replayed < most, "no leg triggered within the replay"
        replayed += (await control(sim, "POST", "/sim/advance", {"trades": 200}))["replayed"]


async def sells(edge: CcxtEdge) -> list[OrderFilled]:
    """The account's sells, as the fills the edge reads (named by bosun's client order ids)."""
    return [f for f in await edge.fills() if f.side == "sell"]


async def test_the_legs_go_out_as_one_list_and_the_take_profit_hit_leaves_no_stop(sim: Simulator,
                                                                                 edge: CcxtEdge) -> None:
    stop, take_profit, held = await long_with_levels(sim, edge, "g-tp", below="0.5", above="1")
    # One round with both legs (as execution emits them): the first leg's own placement is left to the list.
    answers = await edge.carry_out([PlaceOrder(stop), PlaceBracket(stop, take_profit)])
    assert [(type(a), a.client_order_id) for a in answers] == [(OrderAccepted, take_profit.id),
                                                               (OrderAccepted, stop.id)]
    placed = await open_orders(edge)
    assert sorted((o["clientOrderId"], o["info"]["type"], o["amount"]) for o in placed) == sorted(
        [(stop.id, "STOP_LOSS", float(held)), (take_profit.id, "TAKE_PROFIT", float(held))])
    assert len({o["info"]["orderListId"] for o in placed}) == 1  # one list, over one lock
    assert sim.exchange.balances.locked["BTC"] == held and sim.exchange.balances.free["BTC"] == 0

    await until_none_open(sim, edge)
    [sell] = await sells(edge)  # one sell: the take-profit's, all that was held
    assert (sell.client_order_id, sell.qty) == (take_profit.id, held)
    [gone] = await edge.settle_bracket(take_profit.id, (stop,))
    assert isinstance(gone, OrderCanceled) and gone.client_order_id == stop.id
    assert gone.reason == f"one-cancels-the-other: {take_profit.id} filled"
    fetched = await edge.accounts[("alice", "binance")].exchange.fetch_order(None, SYMBOL,
                                                                              {"origClientOrderId": stop.id})
    assert (fetched["status"], fetched["filled"]) == ("expired", 0)


async def test_the_stop_hit_leaves_no_take_profit(sim: Simulator, edge: CcxtEdge) -> None:
    stop, take_profit, held = await long_with_levels(sim, edge, "g-sl", below="1", above="0.5")
    await edge.carry_out([PlaceOrder(stop), PlaceBracket(stop, take_profit)])
    await until_none_open(sim, edge)
    [sell] = await sells(edge)
    assert (sell.client_order_id, sell.qty) == (stop.id, held) and sell.price <= stop.stop_price
    [gone] = await edge.settle_bracket(stop.id, (take_profit,))
    assert isinstance(gone, OrderCanceled) and gone.client_order_id == take_profit.id
    [again] = await edge.settle_bracket(stop.id, (take_profit,))  # asked again: the same event id, deduplicated
    assert again.id == gone.id
    assert sim.exchange.balances.locked["BTC"] == 0 and sim.exchange.balances.free["BTC"] == 0


async def test_a_leg_placed_alone_is_replaced_by_the_list_when_its_sibling_comes(sim: Simulator,
                                                                                 edge: CcxtEdge) -> None:
    stop, take_profit, held = await long_with_levels(sim, edge, "g-split", below="0.5", above="0.5")
    [alone] = await edge.carry_out([PlaceOrder(stop)])  # the sibling comes in a later round
    assert isinstance(alone, OrderAccepted)
    await edge.carry_out([PlaceBracket(stop, take_profit)])
    placed = await open_orders(edge)
    assert sorted(o["clientOrderId"] for o in placed) == sorted([stop.id, take_profit.id])
    assert {o["info"]["orderListId"] for o in placed} != {-1}
    again = await edge.carry_out([PlaceBracket(stop, take_profit)])  # after a restart: adopted, not sent twice
    assert [type(a) for a in again] == [OrderAccepted, OrderAccepted] and len(await open_orders(edge)) == 2
    assert sim.exchange.balances.locked["BTC"] == held


async def test_an_answer_lost_after_the_exchange_took_the_list_places_it_once(sim: Simulator,
                                                                              edge: CcxtEdge) -> None:
    stop, take_profit, _ = await long_with_levels(sim, edge, "g-lost", below="0.5", above="0.5")
    await control(sim, "POST", "/sim/faults", {"drop_order_responses": 1, "paths": ["/api/v3/orderList/oco"]})
    answers = await edge.carry_out([PlaceBracket(stop, take_profit)])
    assert [type(a) for a in answers] == [OrderAccepted, OrderAccepted]
    assert len(await open_orders(edge)) == 2 and len(sim.exchange.lists) == 1


async def test_a_take_profit_the_market_has_passed_is_refused_and_the_stop_goes_out_alone(sim: Simulator,
                                                                                           edge: CcxtEdge) -> None:
    stop, take_profit, held = await long_with_levels(sim, edge, "g-passed", below="0.5", above="-0.5")
    refused, accepted = await edge.carry_out([PlaceOrder(stop), PlaceBracket(stop, take_profit)])
    assert isinstance(refused, OrderRejected) and refused.client_order_id == take_profit.id
    assert "relationship of the prices" in refused.reason and refused.reason.endswith("(the stop-loss goes out alone)")
    assert isinstance(accepted, OrderAccepted) and accepted.client_order_id == stop.id
    [placed] = await open_orders(edge)
    assert (placed["clientOrderId"], placed["info"]["type"], Decimal(str(placed["amount"]))) == (
        stop.id, "STOP_LOSS", held)



async def test_a_fill_that_grows_the_position_resizes_the_list_and_the_take_profit_sells_it_all(
        sim: Simulator, edge: CcxtEdge) -> None:
    stop, take_profit, held = await long_with_levels(sim, edge, "g-grow", below="0.5", above="1")
    await edge.carry_out([PlaceBracket(stop, take_profit)])
    assert await edge.carry_out([ResizeBracket(stop, take_profit)]) == []  # what it covers is what is held
    await edge.place(order(4, qty="0.02"))  # the position grows (an entry filled in parts, a trade by hand)
    grown = Decimal(str((await edge.accounts[("alice", "binance")].exchange.fetch_balance())["BTC"]["total"]))
    answers = await edge.carry_out([ResizeBracket(stop, take_profit)])
    assert [(type(a), a.client_order_id) for a in answers] == [(OrderAccepted, take_profit.id),
                                                               (OrderAccepted, stop.id)]  # the same ids
    placed = await open_orders(edge)
    assert sorted(o["clientOrderId"] for o in placed) == sorted([stop.id, take_profit.id])
    assert {Decimal(str(o["amount"])) for o in placed} == {grown} and grown > held
    assert len(sim.exchange.lists) == 2 and sim.exchange.balances.free["BTC"] == 0  # the first list canceled
    await until_none_open(sim, edge)
    sold = await sells(edge)
    assert [(f.client_order_id, f.qty) for f in sold] == [(take_profit.id, grown)]


async def test_canceling_both_legs_closes_the_list_and_answers_each(sim: Simulator, edge: CcxtEdge) -> None:
    stop, take_profit, held = await long_with_levels(sim, edge, "g-cancel", below="0.5", above="0.5")
    await edge.carry_out([PlaceBracket(stop, take_profit)])
    cancels = [CancelVenueOrder(CancelOrder(id=f"{leg.id}.cancel", ts_event=0, client_order_id=leg.id, client="alice",
                                            venue="binance", symbol="BTCUSDT", reason="bracket replaced"))
               for leg in (stop, take_profit)]
    answers = await edge.carry_out(cancels)  # the first cancels the list; the second finds its leg canceled
    assert [(type(a), a.client_order_id) for a in answers] == [(OrderCanceled, stop.id),
                                                               (OrderCanceled, take_profit.id)]
    assert await open_orders(edge) == [] and sim.exchange.balances.free["BTC"] == held
