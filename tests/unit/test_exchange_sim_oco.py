"""The simulator's OCO order lists (POST /api/v3/orderList/oco): one lock for the pair, the first
leg to trigger expires the other, a cancel of either cancels both."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bosun.apps.exchange_sim.errors import BinanceError
from bosun.apps.exchange_sim.exchange import Exchange
from tests.unit.test_exchange_sim import exchange  # noqa: F401 (the fixture: last price 60000, 0.01 BTC held)

D = Decimal


def oco(ex: Exchange, take_profit: str, stop_loss: str, swapped: bool = False) -> object:
    """A sell's pair: its take-profit above, its stop-loss below (`swapped`: the other way round)."""
    legs = [{"type": "TAKE_PROFIT", "price": D(0), "stop_price": D(take_profit), "time_in_force": "",
             "client_id": "tp"},
            {"type": "STOP_LOSS", "price": D(0), "stop_price": D(stop_loss), "time_in_force": "", "client_id": "sl"}]
    above, below = legs[::-1] if swapped else legs
    return ex.place_oco(symbol="BTCUSDT", side="SELL", qty=D("0.01"), list_client_id="pair", above=above,
                        below=below)


def test_the_pair_locks_the_quantity_once_and_the_stop_leg_expires_the_take_profit(exchange) -> None:  # noqa: F811
    ex, events = exchange
    pair = oco(ex, "60005.00", "59985.00")
    assert (ex.balances.free["BTC"], ex.balances.locked["BTC"]) == (0, D("0.01"))
    take_profit, stop = pair.legs
    ex.advance(trades=1)  # 59990: neither
    assert take_profit.is_open and stop.is_open
    ex.advance(trades=1)  # 59980: the stop
    assert (stop.status, stop.filled, take_profit.status) == ("FILLED", D("0.01"), "EXPIRED")
    assert not pair.is_open and ex.balances.locked["BTC"] == 0 and ex.balances.free["BTC"] == 0
    ex.advance(trades=1)  # 60010 would have reached the take-profit: it is gone
    assert [f.order_id for f in ex.trades] == [stop.id]
    assert [e["g"] for e in events if e.get("e") == "executionReport" and e["x"] == "EXPIRED"] == [pair.id]


def test_the_take_profit_leg_expires_the_stop(exchange) -> None:  # noqa: F811
    ex, _ = exchange
    take_profit, stop = oco(ex, "60005.00", "59950.00").legs
    ex.advance(trades=3)  # 59990, 59980, 60010: the take-profit
    assert (take_profit.status, take_profit.filled, stop.status) == ("FILLED", D("0.01"), "EXPIRED")
    assert [f.price for f in ex.trades] == [D("60010.00")]


def test_canceling_one_leg_cancels_the_list_and_frees_the_lock(exchange) -> None:  # noqa: F811
    ex, _ = exchange
    pair = oco(ex, "60005.00", "59985.00")
    ex.cancel("BTCUSDT", None, "tp")
    assert [leg.status for leg in pair.legs] == ["CANCELED", "CANCELED"]
    assert ex.balances.free["BTC"] == D("0.01") and ex.get_list(None, "pair") is pair
    with pytest.raises(BinanceError, match="Unknown order"):
        ex.cancel("BTCUSDT", None, "sl")


def test_a_pair_not_straddling_the_market_or_with_its_legs_swapped_is_refused(exchange) -> None:  # noqa: F811
    ex, _ = exchange
    with pytest.raises(BinanceError, match="relationship of the prices"):
        oco(ex, "59995.00", "59985.00")  # the take-profit below the last price
    with pytest.raises(BinanceError, match="needs TAKE_PROFIT above"):
        oco(ex, "59985.00", "60005.00", swapped=True)  # a sell's stop-loss above the market
    assert ex.open_orders(None) == [] and ex.balances.locked["BTC"] == 0
