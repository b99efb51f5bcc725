"""Orders that close a position on a spot exchange: a bracket's legs (ccxt's trigger params) and
reduce-only sells, sized by what the account holds.

On spot the position is the base asset the account holds (less the fees the exchange took in
it, which bosun books in quote), and there are no shorts: a leg that closes a long sells the
free base balance (what the account holds and no other order has locked), a reduce-only sell
at most that; a buy-side leg has nothing to close and is refused. The exchange locks what a resting
sell may sell, so the two legs of a bracket go out together as one OCO order list (`oco_list`,
Binance spot's POST /api/v3/orderList/oco) over that one balance; a leg placed alone takes the
whole free balance, and a second one then finds none: it is refused, naming why."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import msgspec

from proto.events import SubmitOrder

# bosun's order type -> ccxt's unified param that makes a market order wait for its trigger
# (binance spot: STOP_LOSS / TAKE_PROFIT).
TRIGGERS = {"stop_market": "stopLossPrice", "take_profit_market": "takeProfitPrice"}


async def sized(exchange: Any, symbol: str, order: SubmitOrder,
                patiently: Callable[..., Awaitable[Any]]) -> tuple[SubmitOrder, dict[str, str]] | str:
    """(`order` with its quantity, ccxt params of its trigger if any), or why it cannot be placed."""
    trigger = {}
    if order.order_type in TRIGGERS:
        if order.stop_price is None:
            return f"{order.order_type} needs a stop_price"
        trigger = {TRIGGERS[order.order_type]: str(order.stop_price)}
    if not (order.close_position or order.reduce_only and order.side == "sell"):
        return order, trigger
    if order.side == "buy":
        return f"{order.venue} is a spot account: it holds no short position for a buy {order.order_type} to close"
    base = exchange.market(symbol)["base"]
    free = Decimal(str(((await patiently(exchange.fetch_balance)).get(base) or {}).get("free") or 0))
    if free <= 0:
        if order.oco:
            return (f"no free {base} left to close: another leg of OCO group {order.oco} holds it (the legs "
                    f"of one group go out together, as an OCO order list, only where the exchange has them)")
        return f"no {base} held on {order.venue}: no position for {order.order_type} to close"
    return msgspec.structs.replace(order, qty=free if order.close_position else min(order.qty, free)), trigger


def oco_list(market_id: str, stop: SubmitOrder, take_profit: SubmitOrder, amount: str, stop_price: str,
             take_profit_price: str) -> dict[str, str]:
    """Binance spot's OCO order list closing a long: the take-profit above the market, the stop-loss
    below, both market orders once triggered, over `amount`; the list named by the legs' OCO group."""
    return {"symbol": market_id, "side": "SELL", "quantity": amount, "listClientOrderId": str(stop.oco),
            "aboveType": "TAKE_PROFIT", "aboveStopPrice": take_profit_price, "aboveClientOrderId": take_profit.id,
            "belowType": "STOP_LOSS", "belowStopPrice": stop_price, "belowClientOrderId": stop.id}
