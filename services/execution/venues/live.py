"""The live venues as an actor: execution's commands for accounts of kind `live` become
effects that the process's exchange edge (ccxt_edge.py, the one place with keys and ccxt)
carries out before the command is acked; the exchange's answers come back on the order log.

Idempotent by construction: a command already answered in the log is never carried out
again, and after a restart the commands the log holds no answer for are carried out on
start. Placing looks the order up by its client order id first, so an order that reached the
exchange before a crash is adopted, not sent twice. Fills the edge reads from the exchange
come back through `on_fills_found` and are published once each, by trade id.

A bracket's two legs (stop-loss and take-profit, one OCO group) go out as one OCO order list
(PlaceBracket) where the exchange has them, so the exchange lets only one fill even while bosun
is down: the first leg is placed as it comes, and when its sibling comes it is replaced by the
list (in the same round the edge sends only the list). When a leg fills, its siblings are
settled (SettleBracket): closed as the exchange expired them, or canceled. Any other fill in a
market with a bracket working resizes it (ResizeBracket): the list is placed again over what the
account then holds, when that differs.

In capped-live mode (`[live] capped = true`) an order above the caps is rejected here, naming
the cap, and never reaches the edge: the adapter then keeps the accounts' book from the log
and reads the newest prices, which it does not otherwise.

Once started, the edge reads what each account holds (`on_venue_found`): the fills missed
while down are published (once each, as ever), then one VenueStateReported per market, naming
them, for execution to reconcile with."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import NamedTuple

import msgspec

from bosun.model.prices import LatestPrices
from bosun.model.recent import RecentIds
from bosun.runtime.actor import Actor, Delivery, Effect, Input, Outbox, SnapshotError, event_input
from bosun.runtime.clock import Clock
from proto import codec
from proto import subjects as sj
from proto.events import (CancelAllOrders, CancelOrder, Event, OrderAccepted, OrderCanceled, OrderFilled,
                          OrderRejected, OrdersCanceled, PriceSnapshot, SubmitOrder, VenueStateReported)
from services.execution.caps import over_caps
from services.execution import replayed
from services.execution.config import ExecutionConfig
from services.execution.orders import PROTECTIVE, OrderBook, rejection

ANSWERS = (OrderAccepted, OrderRejected, OrderCanceled)


class PlaceOrder(msgspec.Struct, Effect, frozen=True):
    order: SubmitOrder
    # Found unanswered in the log after a restart: it may have reached the exchange before the crash
    # and be done there (an exchange refuses a duplicate client order id only while it is open).
    look_first: bool = False


class PlaceBracket(msgspec.Struct, Effect, frozen=True):
    """A bracket's two legs (one OCO group) as one order list where the exchange has them: its
    first leg may have gone out alone in an earlier round (a PlaceOrder), and is then replaced."""

    stop: SubmitOrder
    take_profit: SubmitOrder


class ResizeBracket(msgspec.Struct, Effect, frozen=True):
    """A fill changed the position a bracket closes: its list is placed again over what is held."""

    stop: SubmitOrder
    take_profit: SubmitOrder


class SettleBracket(msgspec.Struct, Effect, frozen=True):
    """A bracket's leg filled: its siblings are closed (the exchange expired them) or canceled."""

    filled: str
    siblings: tuple[SubmitOrder, ...]


class CancelVenueOrder(msgspec.Struct, Effect, frozen=True):
    cancel: CancelOrder


class CancelAllVenueOrders(msgspec.Struct, Effect, frozen=True):
    command: CancelAllOrders


class VenueFound(NamedTuple):
    """What an exchange account holds in one market, read on start: its open orders (client
    order ids), its position (spot: the base asset's balance) and its trades since the newest
    fill recorded, as fills."""

    client: str
    venue: str
    symbol: str
    open_orders: tuple[str, ...]
    position: Decimal
    fills: tuple[OrderFilled, ...]


class LiveAdapter(Actor):
    name = "live"

    def __init__(self, clock: Clock, out: Outbox, config: ExecutionConfig, max_remembered: int = 100_000) -> None:
        super().__init__(clock, out)
        self._accounts = {(client, venue) for client, venues in config.venues.items()
                          for venue, cfg in venues.items() if cfg.kind == "live"}
        self._answered = RecentIds(max_remembered)  # client order ids with an answer in the log
        self._placed = RecentIds(max_remembered)  # order ids handed to the edge by this process
        self._cancelled = RecentIds(max_remembered)  # cancel command ids carried out
        self._fills = RecentIds(max_remembered)  # fill ids (the exchange's trade ids) in the log
        self._unanswered: dict[str, SubmitOrder | CancelOrder] = {}  # from the log, until start
        self._brackets = _Brackets(max_remembered)
        self._settled = RecentIds(max_remembered)  # OCO groups whose siblings were settled after a fill
        self._started = False
        self._caps = config.live if config.live.capped else None
        self._book = OrderBook(max_remembered) if self._caps else None  # the live accounts' orders and positions
        self._prices = LatestPrices()
        self._replayed_through = 0  # the ORDERS sequence a restored snapshot covers
        self._max_remembered = max_remembered

    def inputs(self) -> Sequence[Input]:
        log = Input(sj.ORDERS, self.on_order_log, codec.decode_any, Delivery.REPLAY, after=self._replayed_through)
        if self._caps is None:
            return [log]
        return [log, event_input(sj.PRICES, PriceSnapshot, self._prices.on_price_snapshot, Delivery.LATEST)]

    def on_start(self) -> None:
        self._started = True
        for command in self._unanswered.values():
            self._carry_out(command, look_first=True)
        self._unanswered.clear()

    def on_fills_found(self, fills: Sequence[OrderFilled]) -> None:
        """Trades the edge read from an exchange: each published once, whoever saw it first."""
        for fill in fills:
            if self._fills.add(fill.id):
                self.out.publish(fill)

    def on_venue_found(self, found: Sequence[VenueFound]) -> None:
        now = self.clock.now_ns()
        for market in found:
            new = [fill for fill in market.fills if self._fills.add(fill.id)]
            for fill in new:
                self.out.publish(fill)
            self.out.publish(VenueStateReported(
                id=f"{market.venue}.{market.client}.{market.symbol}.{now}", ts_event=now, client=market.client,
                venue=market.venue, symbol=market.symbol, open_orders=market.open_orders, position=market.position,
                fills_found=tuple(fill.id for fill in new)))

    def on_order_log(self, entry: Event) -> None:
        if (getattr(entry, "client", None), getattr(entry, "venue", None)) not in self._accounts:
            return
        kind = type(entry)
        if self._book is not None:
            self._book.apply(entry)
        if kind is OrderFilled:
            self._fills.add(entry.id)
            if self._started:
                self._settle(entry)  # type: ignore[arg-type]
        elif kind is OrderRejected or kind is OrderCanceled:
            self._brackets.drop(entry.client_order_id)  # type: ignore[attr-defined]
        if kind in ANSWERS or kind is OrderFilled:
            self._answer(entry.client_order_id, kind is OrderCanceled)  # type: ignore[attr-defined]
            return
        if kind is OrdersCanceled:  # as many OrderCanceled
            for coid in entry.client_order_ids:  # type: ignore[attr-defined]
                self._answer(coid, True)
            return
        if kind not in (SubmitOrder, CancelOrder, CancelAllOrders):
            return  # ModifyOrder too: execution issues none, and a live venue replaces by cancel + place
        if kind is SubmitOrder:
            self._brackets.add(entry)  # type: ignore[arg-type]
        if not self._started:
            if kind is SubmitOrder and entry.id not in self._answered:
                self._unanswered[entry.id] = entry  # type: ignore[assignment]
            elif kind is CancelOrder:
                self._unanswered[entry.id] = entry  # type: ignore[assignment]
            return
        self._carry_out(entry)

    def _answer(self, coid: str, canceled: bool) -> None:
        self._answered.add(coid)
        self._unanswered.pop(coid, None)
        if canceled:
            self._unanswered.pop(f"{coid}.cancel", None)

    def _carry_out(self, command: Event, look_first: bool = False) -> None:
        kind = type(command)
        if kind is SubmitOrder:
            if command.id not in self._answered and self._placed.add(command.id):
                problem = self._over_caps(command) if self._book is not None else None  # type: ignore[arg-type]
                if problem:
                    self.out.publish(rejection(command.id, command, problem))  # type: ignore[arg-type]
                else:
                    self.out.effect(self._placement(command, look_first))  # type: ignore[arg-type]
        elif kind is CancelOrder:
            if self._cancelled.add(command.id):
                self.out.effect(CancelVenueOrder(command))  # type: ignore[arg-type]
        else:
            self.out.effect(CancelAllVenueOrders(command))  # type: ignore[arg-type]

    def _placement(self, order: SubmitOrder, look_first: bool) -> PlaceOrder | PlaceBracket:
        """A bracket's second leg goes out with its first, as one OCO list."""
        pair = self._brackets.pair(order)
        if pair is None:
            return PlaceOrder(order, look_first)
        for leg in pair:  # both are carried out now (the list is looked up first, whatever `look_first`)
            self._placed.add(leg.id)
        return PlaceBracket(*pair)

    def _settle(self, fill: OrderFilled) -> None:
        """A leg's fill settles its siblings; any other fill in a market with a bracket resizes it."""
        leg = self._brackets.legs.get(fill.client_order_id)
        if leg is None:
            pair = self._brackets.of_market((fill.client, fill.venue, fill.symbol))
            if pair is not None:
                self.out.effect(ResizeBracket(*pair))
        elif self._settled.add(leg.oco):
            siblings = self._brackets.siblings(leg)
            self._brackets.drop(leg.id)  # filled: the bracket is done
            if siblings:
                self.out.effect(SettleBracket(leg.id, siblings))

    def _over_caps(self, order: SubmitOrder) -> str | None:
        book = self._book
        key = (order.client, order.venue, order.symbol)
        working = book.working(key, but=order.id)
        snapshot = self._prices.by_market.get((order.venue, order.symbol))
        return over_caps(self._caps, order, book.position(key), working,  # type: ignore[arg-type]
                         snapshot.price if snapshot is not None else None)

    # --- snapshots (bosun/runtime/replicas.py): what the log answered, and (capped) the book

    def replayed_part(self) -> bytes:
        return replayed.encode(replayed.LivePart(
            version=replayed.VERSION, accounts=sorted(self._accounts), answered=replayed.ids(self._answered),
            fills=replayed.ids(self._fills), unanswered=list(self._unanswered.values()),
            book=None if self._book is None else self._book.state(), brackets=self._brackets.state(),
            settled=replayed.ids(self._settled)))

    def restore_replayed(self, part: bytes, after: int) -> None:
        state = replayed.decode(part, replayed.LivePart, self._accounts)
        if (state.book is None) != (self._book is None):
            raise SnapshotError(f"taken {'without' if state.book is None else 'with'} the caps of capped live, "
                                f"configured now {'with' if state.book is None else 'without'}")
        self._answered = RecentIds.of(state.answered, self._max_remembered)
        self._fills = RecentIds.of(state.fills, self._max_remembered)
        self._unanswered = {command.id: command for command in state.unanswered}  # type: ignore[misc]
        if state.book is not None:
            self._book = OrderBook.restored(state.book, self._max_remembered)
        self._brackets = _Brackets.restored(state.brackets, self._max_remembered)
        self._settled = RecentIds.of(state.settled, self._max_remembered)
        self._replayed_through = after

    def status(self) -> dict[str, object]:
        return {"accounts": [f"{client}.{venue}" for client, venue in sorted(self._accounts)]}


class _Brackets:
    """The bracket legs in the log (protective orders of an OCO group) not rejected or canceled,
    by client order id; the oldest forgotten past `max_remembered`."""

    def __init__(self, max_remembered: int) -> None:
        self.legs: dict[str, SubmitOrder] = {}
        self._groups: dict[str, dict[str, SubmitOrder]] = {}  # OCO group -> order type -> leg
        self._newest: dict[tuple[str, str, str], str] = {}  # market -> its newest OCO group
        self._max = max_remembered

    def add(self, order: SubmitOrder) -> None:
        if order.oco is None or order.order_type not in PROTECTIVE:
            return
        self.legs[order.id] = order
        self._groups.setdefault(order.oco, {})[order.order_type] = order
        self._newest[(order.client, order.venue, order.symbol)] = order.oco
        if len(self.legs) > self._max:
            self.drop(next(iter(self.legs)))

    def state(self) -> replayed.BracketsState:
        return replayed.BracketsState(
            legs=list(self.legs.values()),
            groups=[(oco, [leg.id for leg in group.values()]) for oco, group in self._groups.items()],
            newest=list(self._newest.items()))

    @classmethod
    def restored(cls, state: replayed.BracketsState, max_remembered: int) -> _Brackets:
        brackets = cls(max_remembered)
        brackets.legs = {leg.id: leg for leg in state.legs}
        # A group holds the very legs of `legs` (drop compares by identity); one no longer there stays out.
        brackets._groups = {oco: {leg.order_type: leg for leg in map(brackets.legs.get, ids) if leg is not None}
                            for oco, ids in state.groups}
        brackets._newest = dict(state.newest)
        return brackets

    def drop(self, coid: str) -> None:
        leg = self.legs.pop(coid, None)
        if leg is not None:
            group = self._groups.get(leg.oco)  # type: ignore[arg-type]
            if group is not None and group.get(leg.order_type) is leg:
                del group[leg.order_type]
                if not group:
                    del self._groups[leg.oco]  # type: ignore[arg-type]

    def pair(self, order: SubmitOrder) -> tuple[SubmitOrder, SubmitOrder] | None:
        """(stop, take-profit) when `order` is a leg whose sibling is known."""
        return self._both(order.oco) if order.id in self.legs else None  # type: ignore[arg-type]

    def of_market(self, market: tuple[str, str, str]) -> tuple[SubmitOrder, SubmitOrder] | None:
        """(stop, take-profit) of the market's newest bracket, while both legs work."""
        return self._both(self._newest.get(market, ""))

    def _both(self, oco: str) -> tuple[SubmitOrder, SubmitOrder] | None:
        group = self._groups.get(oco)
        if group is None or len(group) < 2:
            return None
        return group["stop_market"], group["take_profit_market"]

    def siblings(self, leg: SubmitOrder) -> tuple[SubmitOrder, ...]:
        return tuple(o for o in self._groups.get(leg.oco, {}).values() if o.id != leg.id)  # type: ignore[arg-type]
