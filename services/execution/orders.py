"""The order manager's book and its diff.

The book is state derived from the order log alone: the SubmitOrder commands execution
issued and the Order* events the venues reported (Accepted / Rejected / Modified / Canceled,
one or many at once / Filled): open orders with their remaining quantity and signed positions per (client, venue,
symbol). Applying an entry twice changes nothing, so the execution actor applies what it
issues at once and ignores the echo, and rebuilds it all by replay.

`plan` is the declarative part: given a target position, the smallest set of actions that
gets there."""

from __future__ import annotations

import hashlib
from decimal import Decimal

from msgspec import Struct

from bosun.model.grid import round_qty
from bosun.model.positions import NetPositions, signed
from bosun.model.recent import RecentIds
from services.execution import replayed
from proto.events import (Event, OrderAccepted, OrderCanceled, OrderFilled, OrderModified, OrderRejected,
                          OrdersCanceled, Side, SubmitOrder, TargetPosition)

Key = tuple[str, str, str]  # client, venue, symbol
OrderEvent = SubmitOrder | OrderAccepted | OrderRejected | OrderModified | OrderCanceled | OrderFilled
ZERO = Decimal(0)
BOOK_ENTRIES = frozenset((SubmitOrder, OrderAccepted, OrderRejected, OrderModified, OrderCanceled, OrderFilled,
                          OrdersCanceled))
PROTECTIVE = ("stop_market", "take_profit_market")  # order types that guard a position: a bracket's legs


def client_order_id(target_id: str, n: int) -> str:
    """The n-th order (1, 2, ...) for a target. Binance allows 36 chars of [A-Za-z0-9-_]: 27 here."""
    return "bs-" + hashlib.blake2b(f"{target_id}.{n}".encode()).hexdigest()[:24]


def key_of(event: OrderEvent) -> Key:
    return (event.client, event.venue, event.symbol)


def rejection(client_order_id: str, source: SubmitOrder | TargetPosition, reason: str) -> OrderRejected:
    """An OrderRejected for an order (or the order a target would have made), at its decision time."""
    return OrderRejected(id=client_order_id, ts_event=source.ts_event, client_order_id=client_order_id,
                         client=source.client, venue=source.venue, symbol=source.symbol, reason=reason)


class OpenOrder(Struct):
    order: SubmitOrder
    remaining: Decimal
    canceling: bool = False  # a cancel was sent: it will trade no more, unless it fills before the cancel lands
    superseded: bool = False  # that cancel came from planning toward a target

    @property
    def signed_remaining(self) -> Decimal:
        return signed(self.order.side, self.remaining)


# Plan's actions are Structs: made in C, where a NamedTuple's __new__ is a Python call (a plan per target).
class Cancel(Struct, frozen=True, gc=False):
    client_order_id: str


class Place(Struct, frozen=True, gc=False):
    """One market order."""

    side: Side
    qty: Decimal


def plan(target_qty: Decimal, position: Decimal, open_orders: list[OpenOrder], step: Decimal) -> list[Cancel | Place]:
    """The smallest change from `position` (+ what `open_orders` will still trade) to `target_qty`.

    A working market order is committed: it executes at once on any venue, so a cancel can
    only lose the race; it counts as position and is never cancelled here (the book keeps
    their sum, OrderBook.committed, for the caller to add to `position`). Working limit
    orders that push toward the target are kept, oldest first, as long as together they do
    not overshoot it; every other one (wrong way, or beyond the target) is cancelled. Then
    one market order for what remains, rounded toward zero to `step`; none when that rounds
    to 0. Protective orders (stops of a bracket) are not the caller's to pass here."""
    wanted = target_qty - position
    actions: list[Cancel | Place] = []
    if open_orders:  # usually none: a market order fills on the next bar, before the next target
        limits: list[OpenOrder] = []
        for open_order in open_orders:
            if open_order.order.order_type == "market":
                wanted -= open_order.signed_remaining
            else:
                limits.append(open_order)
        kept = ZERO
        for open_order in limits:
            qty = open_order.signed_remaining
            if qty * wanted > 0 and abs(kept + qty) <= abs(wanted):
                kept += qty
            else:
                actions.append(Cancel(open_order.order.id))
        wanted -= kept
    qty = round_qty(abs(wanted), step)
    if qty:
        actions.append(Place("buy" if wanted > ZERO else "sell", qty))
    return actions


class OrderBook:
    def __init__(self, max_remembered: int = 100_000) -> None:
        self.open: dict[str, OpenOrder] = {}  # client order id -> order, in submit order
        # Per market: the open market orders' signed remaining, summed, and every other open
        # order, so that a target costs the same however many market orders are in flight
        # (over NATS their fills reach the book some time after the next targets).
        self._committed: dict[Key, Decimal] = {}
        self._resting: dict[Key, dict[str, OpenOrder]] = {}
        self.positions = NetPositions()
        # per client, for the metrics: fills applied, orders refused (by the venue, the guard, a dry run)
        self.fills_by_client: dict[str, int] = {}
        self.rejects_by_client: dict[str, int] = {}
        # (type, id) of applied entries: what their msg id says, without building that string
        # for every entry (each is applied once as issued or reported and looked up again as echoed).
        self._applied = RecentIds(max_remembered)
        self._targets = RecentIds(max_remembered)  # ids of targets already acted on

    def apply(self, event: Event) -> bool:
        """Apply one log entry; False (and no change) when it is not one or was applied already."""
        # By exact type, not isinstance/match: on msgspec Structs every class an isinstance
        # tries and misses costs a type.__instancecheck__ call. No order event is subclassed.
        kind = type(event)
        if kind not in BOOK_ENTRIES or not self._applied.add((kind, event.id)):
            return False
        if kind is SubmitOrder:
            self._targets.add(event.target_id)
            if event.id not in self.open:
                self._track(OpenOrder(event, event.qty))
        elif kind is OrderFilled:
            self.positions.apply(event)
            self.fills_by_client[event.client] = self.fills_by_client.get(event.client, 0) + 1
            open_order = self.open.get(event.client_order_id)
            if open_order is not None:
                # Done when sized by the position as it triggered, or filled for all that remains (most
                # fills): untracked as it stood, the fill taking what it still counted for the market.
                if open_order.order.close_position or event.qty >= open_order.remaining:
                    self._untrack(open_order)
                else:
                    self._set_remaining(open_order, open_order.remaining - event.qty)
        elif kind is OrderModified:
            open_order = self.open.get(event.client_order_id)
            if open_order is not None:
                filled = open_order.order.qty - open_order.remaining
                self._set_remaining(open_order, event.qty - filled)
        elif kind is OrderCanceled:
            self._close(event.client_order_id)
        elif kind is OrderRejected:
            self.rejects_by_client[event.client] = self.rejects_by_client.get(event.client, 0) + 1
            self._close(event.client_order_id)
        elif kind is OrdersCanceled:
            for coid in event.client_order_ids:
                self._close(coid)
        return True

    @property
    def fills(self) -> int:
        return sum(self.fills_by_client.values())

    def _close(self, coid: str) -> None:
        open_order = self.open.get(coid)
        if open_order is not None:
            self._untrack(open_order)

    def _track(self, open_order: OpenOrder) -> None:
        o = open_order.order
        self.open[o.id] = open_order
        key = (o.client, o.venue, o.symbol)
        if o.order_type == "market":  # signed_remaining, inline: once per order
            remaining = open_order.remaining if o.side == "buy" else -open_order.remaining
            self._committed[key] = self._committed.get(key, ZERO) + remaining
        else:
            self._resting.setdefault(key, {})[o.id] = open_order

    def _untrack(self, open_order: OpenOrder) -> None:
        o = open_order.order
        del self.open[o.id]
        key = (o.client, o.venue, o.symbol)
        if o.order_type == "market":
            self._committed[key] -= open_order.remaining if o.side == "buy" else -open_order.remaining
        else:
            del self._resting[key][o.id]

    def _set_remaining(self, open_order: OpenOrder, remaining: Decimal) -> None:
        o = open_order.order
        if o.order_type == "market":
            key = (o.client, o.venue, o.symbol)
            self._committed[key] += signed(o.side, remaining - open_order.remaining)
        open_order.remaining = remaining

    def mark_handled(self, target_id: str) -> bool:
        """Remember a target as acted on; False when it was already."""
        return self._targets.add(target_id)

    def position(self, key: Key) -> Decimal:
        return self.positions.get(key)

    def committed(self, key: Key) -> Decimal:
        """What the key's working market orders will still trade, signed: as good as position."""
        return self._committed.get(key, ZERO)

    def working(self, key: Key, but: str | None = None) -> Decimal:
        """What the key's working orders other than a bracket's legs would still trade, signed;
        `but` names one order to leave out."""
        total = sum((o.signed_remaining for o in self.open_orders(key)), self.committed(key))
        left_out = self.open.get(but) if but is not None else None
        if left_out is not None and left_out.order.order_type not in PROTECTIVE:
            total -= left_out.signed_remaining
        return total

    def resting(self, key: Key) -> list[OpenOrder]:
        """The key's working orders other than market orders, a bracket's legs too (one call where a
        caller needs both kinds of `open_orders`)."""
        resting = self._resting.get(key)
        return list(resting.values()) if resting else []

    def open_orders(self, key: Key, protective: bool = False) -> list[OpenOrder]:
        """The key's working orders other than market orders (see `committed`): those that trade
        toward a target, or (`protective`) a bracket's legs."""
        resting = self._resting.get(key)
        if not resting:
            return []  # the usual case when a target comes
        return [o for o in resting.values() if (o.order.order_type in PROTECTIVE) == protective]

    # --- snapshots (services/execution/replayed.py)

    def state(self) -> replayed.BookState:
        kinds, applied = replayed.applied_ids(self._applied)
        return replayed.BookState(
            open=[(o.order, o.remaining) for o in self.open.values()], committed=list(self._committed.items()),
            positions=list(self.positions.by_key.items()), fills_by_client=list(self.fills_by_client.items()),
            rejects_by_client=list(self.rejects_by_client.items()),
            applied_kinds=kinds, applied=applied, targets=replayed.ids(self._targets))

    @classmethod
    def restored(cls, state: replayed.BookState, max_remembered: int = 100_000) -> OrderBook:
        book = cls(max_remembered)
        for order, remaining in state.open:
            open_order = OpenOrder(order, remaining)
            book.open[order.id] = open_order
            if order.order_type != "market":
                book._resting.setdefault((order.client, order.venue, order.symbol), {})[order.id] = open_order
        book._committed = {tuple(key): qty for key, qty in state.committed}  # type: ignore[misc]
        book.positions.by_key = {tuple(key): qty for key, qty in state.positions}  # type: ignore[misc]
        book.fills_by_client = dict(state.fills_by_client)
        book.rejects_by_client = dict(state.rejects_by_client)
        book._applied = replayed.applied_from(state.applied_kinds, state.applied, max_remembered)
        book._targets = RecentIds.of(state.targets, max_remembered)
        return book
