"""Every event and command on the wire, as frozen msgspec Structs.

Conventions shared by all of them:
- `id` is deterministic: the same fact always gets the same id, so it doubles as the
  JetStream `Nats-Msg-Id` (see `msg_id`) and replaying an input publishes nothing new.
- Times are integer nanoseconds since the epoch, UTC (`ts_event`: when it happened;
  `ts_init`: when bosun created the object).
- Prices, quantities and money are `Decimal`; they travel as decimal strings. Each is declared
  with its kind (proto.amounts: `Price`, `Qty`, ...), which decoding enforces: finite, positive
  where it is a magnitude, under a sanity cap; `notional` names the fields whose product is capped.
- Quantities of positions and targets are signed: + long, - short.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

import msgspec

from proto.amounts import Distance, Money, NonNegativePrice, Price, Qty, QtyOrZero, Rate, SignedQty, Volume

Side = Literal["buy", "sell"]
OrderType = Literal["market", "limit", "stop_market", "take_profit_market", "market_on_close", "stop_limit",
                    "take_profit_limit", "trailing_stop_market"]
# GTC: until done or cancelled; IOC: what the first market data after it fills, the rest cancelled;
# FOK: all of it on that first market data, or nothing; GTD: as GTC until `expire_ns`, then cancelled.
TimeInForce = Literal["GTC", "IOC", "FOK", "GTD"]
# Why an order was placed, and so why its fills happened: one vocabulary for targets, orders and fills.
Reason = Literal["signal", "stop_loss", "take_profit", "trailing_stop", "kill_switch", "reconciliation", "manual",
                 "end_of_data"]


class Event(msgspec.Struct, frozen=True, kw_only=True, tag=True, forbid_unknown_fields=True, gc=False):
    """gc=False: an event holds only strings, numbers and other events, so it can never be
    part of a reference cycle; untracked by the cycle collector, it is cheaper to create
    (a backtest creates several per bar)."""

    id: str
    ts_event: int


def msg_id(event: Event) -> str:
    """The JetStream de-duplication id: type and id, unique within any one stream."""
    return f"{type(event).__name__}:{event.id}"


# ----------------------------------------------------------------------------- market data


class Trade(Event, frozen=True, kw_only=True):
    notional: ClassVar = ("qty", "price")

    venue: str
    symbol: str
    price: Price
    qty: Qty
    aggressor: Side  # the taker's side


class Bar(Event, frozen=True, kw_only=True):
    """A closed bar. `ts_event` is the close time (open + interval); `ts_open` the open."""

    venue: str
    symbol: str
    interval: str  # "1m", "1h", ...
    ts_open: int
    open: Price
    high: Price
    low: Price
    close: Price
    volume: Volume


class Quote(Event, frozen=True, kw_only=True):
    """The best bid and ask of one venue.symbol and the size shown at each (Binance `bookTicker`).
    `ts_event` is the exchange's time where the message has one (futures), else the receive time
    set to the exchange's clock (spot bookTicker carries none; see services.ingest.quotes)."""

    venue: str
    symbol: str
    bid: Price
    bid_qty: QtyOrZero
    ask: Price
    ask_qty: QtyOrZero


class PriceSnapshot(Event, frozen=True, kw_only=True):
    """The newest price of one venue.symbol: the value of KV `prices` key `<venue>.<symbol>`.

    `open` is set when the snapshot comes from a bar: it is the bar's open, which a shadow
    venue uses to fill market orders "at the next open"."""

    venue: str
    symbol: str
    price: Price
    open: Price | None = None
    high: Price | None = None
    low: Price | None = None
    bid: Price | None = None  # the newest best bid and ask (from Quote), where the market has quotes
    ask: Price | None = None


class FundingRateSettled(Event, frozen=True, kw_only=True):
    """A perpetual's funding at `ts_event`, the funding time: each open position of the market pays
    qty x mark x rate (a long pays a positive rate, a short receives it). `mark_price` is the venue's
    mark at that time when known (websocket); None (rate history files) means the newest price."""

    venue: str
    symbol: str
    rate: Rate  # a fraction per funding period
    mark_price: Price | None = None


# ----------------------------------------------------------------------------- intent


class SignalDetected(Event, frozen=True, kw_only=True):
    strategy: str
    venue: str
    symbol: str
    direction: int  # +1 long, -1 short, 0 flat
    price: Price  # the price the signal was computed at
    stop_distance: Distance | None = None  # k standard deviations, in price units
    take_distance: Distance | None = None


class TargetPosition(Event, frozen=True, kw_only=True):
    """What position `client` should hold on `venue`/`symbol` (a command: make it so)."""

    notional: ClassVar = ("qty", "price")

    client: str
    venue: str
    symbol: str
    qty: SignedQty
    strategy: str
    price: Price  # the reference price the target was sized at
    stop_loss: Price | None = None
    take_profit: Price | None = None
    reason: Reason = "signal"


class TargetApproved(Event, frozen=True, kw_only=True):
    """Risk let `target` through; `id` equals the target's id."""

    target: TargetPosition


class RiskLimitBreached(Event, frozen=True, kw_only=True):
    client: str
    venue: str
    symbol: str
    limit: str  # which rule: "kill_switch", "max_position", "max_order_notional", "stale_price", ...
    detail: str  # what was asked and what the limit is, for a person
    target_id: str
    action: str = "rejected"  # or "clamped": the target was approved cut to the limit (older messages: rejected)


class TradingStateChanged(Event, frozen=True, kw_only=True):
    """A scope's trading state changed. `scope` is "global", "client.<client>" or
    "market.<client>.<venue>.<symbol>"; `state` "active", "reducing" or "halted" (bosun.model.trading);
    `enabled` is False only when the scope is halted; `by` who or what changed it."""

    enabled: bool
    reason: str
    scope: str = "global"
    state: str = ""  # older messages: only `enabled`
    by: str = ""


class MarketHalted(Event, frozen=True, kw_only=True):
    """A venue adapter found a market halted by its venue (maintenance, a trading break). A venue
    halted as a whole is reported once per market it trades."""

    venue: str
    symbol: str
    reason: str


# ----------------------------------------------------------------------------- orders


# Commands: what execution decides, in the imperative. A venue adapter carries them out and
# reports what happened as the Order* events below. `ts_event` is when the command was decided;
# `market_ns`, when set, is the market time it was decided at (the bar or trade behind it): a
# simulated venue applies it only once its own market data has reached that time, so it sees
# market data and commands in the order they were decided whatever order NATS delivers them in.


class SubmitOrder(Event, frozen=True, kw_only=True):
    """Place an order. `id` is the deterministic client order id.

    `stop_price` triggers stop_market / take_profit_market orders; `close_position` makes such
    an order close whatever position the client holds when it triggers (then `qty` is 0) and
    `oco` names its one-cancels-the-other group: the first of a group to fill cancels the rest.
    stop_limit / take_profit_limit become a limit order at `limit_price` once `stop_price` is
    reached; trailing_stop_market triggers when the price has come back `trailing_bps` from the
    best it reached since the order was placed (a sell from the highest, a buy from the lowest)."""

    notional: ClassVar = ("qty", "limit_price")

    client: str
    venue: str
    symbol: str
    side: Side
    qty: QtyOrZero  # unsigned
    order_type: OrderType
    limit_price: Price | None = None
    stop_price: Price | None = None
    close_position: bool = False
    oco: str | None = None
    target_id: str
    reason: Reason = "signal"
    market_ns: int | None = None
    time_in_force: TimeInForce = "GTC"
    trailing_bps: Distance | None = None  # trailing_stop_market: the distance from the best price, in bps
    expire_ns: int | None = None  # GTD: market data from this time on no longer fills it; it is cancelled
    post_only: bool = False  # a limit that would take liquidity at once is rejected
    reduce_only: bool = False  # never increases the position: trimmed to it, or rejected


class CancelOrder(Event, frozen=True, kw_only=True):
    """Cancel one working order; `id` is `<client order id>.cancel`."""

    client_order_id: str
    client: str
    venue: str
    symbol: str
    reason: str
    market_ns: int | None = None


class ModifyOrder(Event, frozen=True, kw_only=True):
    """Change a working order's quantity and/or limit price in place."""

    client_order_id: str
    client: str
    venue: str
    symbol: str
    qty: Qty | None = None
    limit_price: Price | None = None
    market_ns: int | None = None


class CancelAllOrders(Event, frozen=True, kw_only=True):
    """Cancel every working order of `client` on `venue`/`symbol`, protective ones included."""

    client: str
    venue: str
    symbol: str
    reason: str
    market_ns: int | None = None


# Events: what a venue reports.


class OrderAccepted(Event, frozen=True, kw_only=True):
    client_order_id: str
    venue_order_id: str
    client: str
    venue: str
    symbol: str


class OrderRejected(Event, frozen=True, kw_only=True):
    client_order_id: str
    client: str
    venue: str
    symbol: str
    reason: str


class OrderModified(Event, frozen=True, kw_only=True):
    """A working order now has `qty` (its original quantity, filled part included) and `limit_price`."""

    client_order_id: str
    client: str
    venue: str
    symbol: str
    qty: Qty
    limit_price: Price | None = None


class OrderCanceled(Event, frozen=True, kw_only=True):
    client_order_id: str
    client: str
    venue: str
    symbol: str
    reason: str


MAX_CANCELED_IDS = 1_000  # per OrdersCanceled: ~40 KB of ids at most (36 chars each), far under NATS's 1 MB


class OrdersCanceled(Event, frozen=True, kw_only=True):
    """A venue's answer to a CancelAllOrders: the working orders of `client` on `venue`/`symbol` it
    canceled, in one durable event rather than one OrderCanceled each (1,000 of those take ~100 ms
    to publish from Python; a kill switch has 10). Every reader applies it exactly as that many
    OrderCanceled. At most MAX_CANCELED_IDS ids: more are answered in further events.
    `id` is `<CancelAllOrders id>.canceled.<n>`, n = 1, 2, ..."""

    client_order_ids: Annotated[tuple[str, ...], msgspec.Meta(min_length=1, max_length=MAX_CANCELED_IDS)]
    client: str
    venue: str
    symbol: str
    reason: str


class OrderFilled(Event, frozen=True, kw_only=True):
    """`id` is the fill id, unique per venue."""

    notional: ClassVar = ("qty", "price")

    client_order_id: str
    client: str
    venue: str
    symbol: str
    side: Side
    qty: Qty  # unsigned
    price: Price
    fee: Money  # in quote currency; negative: a rebate
    liquidity: Literal["maker", "taker"] = "taker"
    reason: Reason = "signal"


class VenueStateReported(Event, frozen=True, kw_only=True):
    """What a venue holds for one client and market, as its adapter finds it on start: the
    working orders (client order ids) and the position. Execution reconciles against it."""

    client: str
    venue: str
    symbol: str
    open_orders: tuple[str, ...]
    position: SignedQty
    fills_found: tuple[str, ...] = ()  # fill ids a live venue's trades gave on start (missed while down)


class ReconciliationReport(Event, frozen=True, kw_only=True):
    """What execution found on start when it compared a venue's report with its intents, what it
    did about each finding, and why (`why[i]` explains `done[i]`). Goes to the audit."""

    client: str
    venue: str
    symbol: str
    found: tuple[str, ...]
    done: tuple[str, ...]
    why: tuple[str, ...]


class PositionChanged(Event, frozen=True, kw_only=True):
    notional: ClassVar = ("qty", "avg_price")

    client: str
    venue: str
    symbol: str
    qty: SignedQty
    avg_price: NonNegativePrice
    realized_pnl: Money  # net of fees
    unrealized_pnl: Money
    fees: Money
    fill_id: str


class FundingPaid(Event, frozen=True, kw_only=True):
    """A funding payment booked on one position; `amount` > 0 was paid, < 0 received."""

    notional: ClassVar = ("qty", "mark_price")

    client: str
    venue: str
    symbol: str
    qty: SignedQty  # the position it was charged on
    mark_price: Price
    rate: Rate
    amount: Money
    funding: Money  # the position's funding paid so far


class EquitySnapshot(Event, frozen=True, kw_only=True):
    """One client's ledger at `ts_event`, over every venue. `unmarked` lists the markets
    (venue.symbol) with an open position but no fresh price: their unrealized pnl is at the last
    known price (a stale one, or the last fill's), so the equity is not fully current."""

    client: str
    capital: Money
    realized_pnl: Money  # net of fees and funding, as in PositionChanged
    unrealized_pnl: Money
    fees: Money
    funding: Money  # paid (> 0) or received (< 0)
    equity: Money  # capital + realized + unrealized
    gross_exposure: Money
    net_exposure: Money
    unmarked: tuple[str, ...] = ()


# ----------------------------------------------------------------------------- plumbing


class DeadLetter(Event, frozen=True, kw_only=True):
    """An input a service could not handle; `payload` is the message exactly as received."""

    service: str
    subject: str
    reason: str
    payload: bytes


ANY_EVENT = (
    Trade
    | Bar
    | Quote
    | PriceSnapshot
    | SignalDetected
    | TargetPosition
    | TargetApproved
    | RiskLimitBreached
    | TradingStateChanged
    | SubmitOrder
    | CancelOrder
    | ModifyOrder
    | CancelAllOrders
    | OrderAccepted
    | OrderRejected
    | OrderModified
    | OrderCanceled
    | OrdersCanceled
    | OrderFilled
    | VenueStateReported
    | ReconciliationReport
    | PositionChanged
    | DeadLetter
    | FundingRateSettled
    | FundingPaid
    | EquitySnapshot
    | VenueStateReported
    | MarketHalted
)
