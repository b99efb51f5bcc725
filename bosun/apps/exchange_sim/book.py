"""Orders and the rules that match them against one replayed trade or the last price. Pure: it
decides what fills at what price; the exchange moves the money and reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

ZERO = Decimal(0)
OPEN = frozenset({"NEW", "PARTIALLY_FILLED"})
# Types that wait for their stop price, and what they become when it trades.
TRIGGERED = {"STOP_LOSS": "MARKET", "TAKE_PROFIT": "MARKET", "STOP_LOSS_LIMIT": "LIMIT",
             "TAKE_PROFIT_LIMIT": "LIMIT"}
ORDER_TYPES = ("MARKET", "LIMIT", "LIMIT_MAKER", *TRIGGERED)
ACTS_AS = {**TRIGGERED, "LIMIT_MAKER": "LIMIT"}  # LIMIT_MAKER: a LIMIT refused if it would take
TIMES_IN_FORCE = ("GTC", "IOC", "FOK")


@dataclass(slots=True)
class Order:
    id: int
    client_id: str
    symbol: str
    side: str  # BUY or SELL
    type: str  # one of ORDER_TYPES, as placed
    time_in_force: str  # "" for market types
    qty: Decimal  # base asset; for a quoteOrderQty market buy, set when it fills
    price: Decimal  # limit price; ZERO for market types
    stop_price: Decimal  # ZERO unless a triggered type
    quote_qty: Decimal  # quoteOrderQty of a market order, else ZERO
    time_ms: int
    update_ms: int
    lock_asset: str
    locked: Decimal = ZERO  # what is still locked for this order
    filled: Decimal = ZERO
    quote_filled: Decimal = ZERO
    status: str = "NEW"
    triggered: bool = False
    cancel_client_id: str = ""  # the cancel request's own client id: Binance reports it as `clientOrderId`
    list_id: int = -1  # the OCO order list it is a leg of, else -1
    fills: list[Fill] = field(default_factory=list)

    @property
    def is_open(self) -> bool:
        return self.status in OPEN

    @property
    def remaining(self) -> Decimal:
        return self.qty - self.filled

    @property
    def acts_as(self) -> str:
        """MARKET or LIMIT: what the order does once its stop (if any) has traded."""
        return ACTS_AS.get(self.type, self.type)

    @property
    def waiting(self) -> bool:
        return self.type in TRIGGERED and not self.triggered


@dataclass(slots=True)
class OrderList:
    """An OCO pair: the first leg to trigger (or fill) expires the other, and a cancel of either
    cancels both. The pair shares one lock, held by whichever leg is open."""

    id: int
    client_id: str
    symbol: str
    legs: tuple[Order, Order]  # above, below
    time_ms: int

    @property
    def is_open(self) -> bool:
        return any(leg.is_open for leg in self.legs)


@dataclass(frozen=True, slots=True)
class Fill:
    trade_id: int
    order_id: int
    symbol: str
    side: str
    price: Decimal
    qty: Decimal
    commission: Decimal
    commission_asset: str
    time_ms: int
    maker: bool

    @property
    def quote_qty(self) -> Decimal:
        return self.price * self.qty


def marketable(order: Order, price: Decimal) -> bool:
    """Would a limit order trade against a print at `price`?"""
    return price <= order.price if order.side == "BUY" else price >= order.price


def stop_reached(order: Order, price: Decimal) -> bool:
    """A stop-loss sells when the price falls to its stop (buys when it rises to it); a
    take-profit the other way round."""
    falling = (order.side == "SELL") == order.type.startswith("STOP_LOSS")
    return price <= order.stop_price if falling else price >= order.stop_price


def priority(order: Order) -> tuple[Decimal, int]:
    """Best price first, then first come."""
    return (-order.price if order.side == "BUY" else order.price, order.id)
