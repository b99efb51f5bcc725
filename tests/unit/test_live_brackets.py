"""The live adapter's brackets, pure (on the in-process bus): a target's stop-loss and take-profit
become one PlaceBracket (an OCO order list on the exchange), once, whether they come in one round,
in two, or unanswered after a restart; a leg's fill settles its sibling once; any other fill in the
market resizes the bracket."""

from __future__ import annotations

from decimal import Decimal as D

import msgspec

from proto.events import OrderAccepted, OrderFilled, OrderRejected, SubmitOrder
from services.execution.venues.live import PlaceBracket, PlaceOrder, ResizeBracket, SettleBracket
from tests.unit.test_execution_actor import T0, Harness, approved, config, live


def bracket_orders() -> tuple[SubmitOrder, SubmitOrder, SubmitOrder]:
    """(entry, stop, take-profit) of a long with both levels, as execution emits them."""
    h = Harness(config(kind="live"))
    entry, stop, take_profit = h.send(approved("t1", "1", stop_loss=D(95), take_profit=D(110)))
    assert (stop.order_type, take_profit.order_type, stop.oco) == ("stop_market", "take_profit_market",
                                                                   take_profit.oco)
    return entry, stop, take_profit


def answered(order: SubmitOrder) -> OrderAccepted:
    return OrderAccepted(id=order.id, ts_event=T0, client_order_id=order.id, venue_order_id=f"v-{order.id}",
                         client="alice", venue="binance", symbol="BTCUSDT")


def test_the_second_leg_brings_its_sibling_as_one_bracket() -> None:
    entry, stop, take_profit = bracket_orders()
    _, adapter, effects = live()
    for order in (entry, stop, take_profit, take_profit):  # the last: an echo
        adapter.on_order_log(order)
    assert effects == [PlaceOrder(entry), PlaceOrder(stop), PlaceBracket(stop, take_profit)]


def test_after_a_restart_unanswered_legs_go_out_as_one_bracket_once() -> None:
    entry, stop, take_profit = bracket_orders()
    _, _, effects = live([entry, answered(entry), stop, take_profit])
    assert effects == [PlaceBracket(stop, take_profit)]
    _, _, effects = live([entry, answered(entry), stop, answered(stop), take_profit])  # the stop went out alone
    assert effects == [PlaceBracket(stop, take_profit)]


def test_a_leg_refused_leaves_its_sibling_to_go_out_alone() -> None:
    entry, stop, take_profit = bracket_orders()
    refused = OrderRejected(id=stop.id, ts_event=T0, client_order_id=stop.id, client="alice", venue="binance",
                            symbol="BTCUSDT", reason="no BTC held")
    _, adapter, effects = live()
    for event in (stop, refused, take_profit):
        adapter.on_order_log(event)
    assert effects == [PlaceOrder(stop), PlaceOrder(take_profit)]


def test_a_legs_fill_settles_its_sibling_once() -> None:
    entry, stop, take_profit = bracket_orders()
    _, adapter, effects = live([entry, answered(entry), stop, answered(stop), take_profit, answered(take_profit)])
    assert effects == []
    fill = OrderFilled(id="binance-9", ts_event=T0, client_order_id=take_profit.id, client="alice", venue="binance",
                       symbol="BTCUSDT", side="sell", qty=D(1), price=D(110), fee=D(0), reason="take_profit")
    adapter.on_order_log(fill)
    adapter.on_order_log(fill)  # seen again
    assert effects == [SettleBracket(take_profit.id, (stop,))]


def test_any_other_fill_in_the_market_resizes_the_working_bracket() -> None:
    entry, stop, take_profit = bracket_orders()
    _, adapter, effects = live([entry, answered(entry), stop, answered(stop), take_profit, answered(take_profit)])
    more = OrderFilled(id="binance-10", ts_event=T0, client_order_id="bs-more", client="alice", venue="binance",
                       symbol="BTCUSDT", side="buy", qty=D(1), price=D(100), fee=D(0))
    adapter.on_order_log(more)
    assert effects == [ResizeBracket(stop, take_profit)]
    leg_fill = msgspec.structs.replace(more, id="binance-11", client_order_id=stop.id, side="sell")
    adapter.on_order_log(leg_fill)
    adapter.on_order_log(msgspec.structs.replace(more, id="binance-12"))  # the bracket is done: nothing to resize
    assert effects == [ResizeBracket(stop, take_profit), SettleBracket(stop.id, (take_profit,))]


def test_a_start_from_a_snapshot_knows_the_working_bracket_as_a_full_replay_does() -> None:
    """The snapshot carries the legs and settled groups: after it, a fill resizes the bracket, a
    leg's fill settles its sibling, and the part then equals the replayed adapter's."""
    entry, stop, take_profit = bracket_orders()
    log = [entry, answered(entry), stop, answered(stop), take_profit, answered(take_profit)]
    more = OrderFilled(id="binance-10", ts_event=T0, client_order_id="bs-more", client="alice", venue="binance",
                       symbol="BTCUSDT", side="buy", qty=D(1), price=D(100), fee=D(0))
    leg_fill = msgspec.structs.replace(more, id="binance-11", client_order_id=stop.id, side="sell")
    _, replayed_adapter, replayed_effects = live(log)
    _, restored, restored_effects = live()
    restored.restore_replayed(live(log)[1].replayed_part(), len(log))
    for adapter in (replayed_adapter, restored):
        for fill in (more, leg_fill):
            adapter.on_order_log(fill)
    assert restored_effects == replayed_effects == [ResizeBracket(stop, take_profit), SettleBracket(stop.id, (take_profit,))]
    assert restored.replayed_part() == replayed_adapter.replayed_part()
