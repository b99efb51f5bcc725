"""Capped-live mode's last line: whether an order to a live venue is above the caps, whatever
risk said. Pure: the live adapter hands it the position, the working orders and the price."""

from __future__ import annotations

from decimal import Decimal

from bosun.model.positions import signed
from proto.events import SubmitOrder
from services.execution.config import LiveCaps


def over_caps(caps: LiveCaps, order: SubmitOrder, position: Decimal, working: Decimal,
              price: Decimal | None) -> str | None:
    """Why `order` may not go, naming the cap; None when it may. `position` is the client's on the
    order's market, `working` what its other working orders there would still add (signed), and
    `price` the market's newest (None: not known). An order that takes the position nearer to
    zero passes the position cap, so a position above it can always be reduced."""
    if order.close_position:  # a protective leg only ever closes
        return None
    quote_price = order.limit_price if order.limit_price is not None else price
    if quote_price is None:
        return (f"CAPPED LIVE: no price known for {order.venue}.{order.symbol} to hold the order's notional "
                f"against max_order_notional {caps.max_order_notional}")
    notional = order.qty * quote_price
    if caps.max_order_notional is not None and notional > caps.max_order_notional:
        return (f"CAPPED LIVE: order notional {notional:f} ({order.qty} at {quote_price}) is above the cap "
                f"max_order_notional {caps.max_order_notional}")
    before = position + working
    after = before + signed(order.side, order.qty)
    if caps.max_position is not None and abs(after) > caps.max_position and abs(after) > abs(before):
        return (f"CAPPED LIVE: position {after} on {order.venue}.{order.symbol} with this order and the working "
                f"ones would be above the cap max_position {caps.max_position}")
    return None
