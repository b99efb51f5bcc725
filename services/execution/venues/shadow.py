"""A simulated venue that fills orders against real market data. Pure: no I/O, no clock.

One `ShadowVenue` is one venue name; each client trades on it on its own terms (fee,
slippage, fill rule, tick and step from its VenueConfig), as accounts of one exchange do.

Fill rules (an order's `ts_event` is when it was decided: the target's ts_event):
- market, bars, fill "next_open": the first bar with ts_open >= decided, at its open;
  fill "close": the first bar with ts_event (close time) >= decided, at its close;
- market, trades: the first trade with ts_event >= decided, at its price;
- limit: the first bar (ts_open >= decided) or trade (ts_event >= decided) that trades
  THROUGH the limit (buy: low/price < limit, sell: high/price > limit), at the limit, as
  maker, without slippage. The whole remaining quantity fills (fill_model "simple", the default);
- market_on_close: at once, at the close of the last bar seen for the symbol, after the client's
  market orders still working there (the end of the data: they would never see a next open);
- latency: an order may fill only on market data from its decision + `submit_latency_ms` on
  (protective orders: from the decision), and is acknowledged then (OrderAccepted's time, every
  order's); a cancel, modify or cancel-all takes effect at its decision + `cancel_latency_ms`
  (the adapter holds it until then), so a cancel can lose the race to a fill;
  `latency_jitter_ms` adds up to that much, drawn from the command's id;
- fill_model "book": each event fills at most what traded there (`bar_volume_share` of a bar's
  volume, a trade's own size, rounded down to the step); the rest stays working and fills on the
  events that follow. Protective and market_on_close orders still fill whole. A symbol with
  trades fills on them, not on their bars. On a symbol with quotes (best bid/ask), market and
  limit orders placed after its first quote fill by venues/queue.py: they arrive after every
  event up to their decision (plus latency) and meet the newest quote; a market order (or a
  limit reaching the opposite best) takes the displayed size there, and what is left from the
  quotes that follow (no depth feed: the book is walked in time, never beyond what each quote
  shows); a resting limit waits behind its queue and fills with trades at or through it, and at
  its limit, for at most the size shown there, when the opposite best reaches its price;
- time in force IOC or FOK (the same here, where an order fills whole or not at all): only the
  first event at/after the decision may fill it, else it is cancelled; GTD: cancelled by the
  first event at or after `expire_ns`, which fills nothing; post-only: a limit at or
  through the newest price is rejected; reduce-only: rejected when it would increase the
  position, and filled at most for the position it reduces when it fills (the rest cancelled);
- stop_market / take_profit_market (protective: they close the position, so they trigger
  only while the client holds one on the side they close): the first bar (ts_open >= decided)
  or trade whose range reaches the level, after the bar's other fills, at the level or at
  the open when the bar opened through it, at the bar's close time. A stop-loss is a
  sell stop under a long (buy stop over a short); a take-profit the other way round. A
  bar that reaches both fills the stop first. The first of an `oco` group to fill cancels
  the rest; a `close_position` order closes what is held then, rounded to the step;
- stop_limit / take_profit_limit (any position): armed until an event reaches `stop_price` (as
  a stop or take-profit of its side would), then a limit at `limit_price` from the next event;
  trailing_stop_market: fills as a stop market once an event comes `trailing_bps` back from the
  best price since it was placed (checked against the best before the event, then moved by it).

Taker fills pay `slippage_bps` against the order (buy x (1 + bps/10000), sell x (1 - bps/10000));
the result is NOT rounded to the tick: a taker fill that walks the book averages to an
off-grid price too. Fee = bps/10000 x qty x fill price (quote currency): `maker_fee_bps` for a
limit order's fill, `taker_fee_bps` for the rest, each `fee_bps` when not set.

An order can reach the venue after the market data it should fill on (the adapter applies a
command only once the market has reached its decision time, so never before): the newest
`max_recent` bars and trades per symbol are kept, and a late order fills where it would have
had it come in time. One decided before everything kept is rejected rather than filled on a
guess. When a symbol gets both bars and trades, a resting order of the simple model fills on
whichever qualifying event arrives first; run it on one kind of market data per symbol for exact
repeats."""

from __future__ import annotations

import hashlib
from bisect import bisect_left
from collections import deque
from collections.abc import Iterable, Sequence
from decimal import Decimal

from msgspec import Struct
from msgspec.structs import replace

from bosun.model.grid import round_price, round_qty
from bosun.model.positions import Key, NetPositions, signed
from bosun.model.recent import RecentIds
from proto.amounts import MAX_NOTIONAL
from proto.events import (MAX_CANCELED_IDS, Bar, CancelAllOrders, CancelOrder, Event, ModifyOrder, OrderAccepted,
                          OrderCanceled, OrderFilled, OrderModified, OrderRejected, OrdersCanceled, Quote, SubmitOrder,
                          Trade)
from services.execution.config import VenueConfig
from services.execution.orders import PROTECTIVE, rejection
from services.execution.replayed import VenueState, WorkingState
from services.execution.venues import queue as q

BPS = Decimal(10_000)
ZERO = Decimal(0)
FILLS_KEPT = 256  # per key, to know the position at a kept bar's time for a late protective order

MarketData = Bar | Trade
Tick = Trade | Quote
NOTHING: tuple[Event, ...] = ()
IOC_MISSED = "IOC/FOK: the first market data after it did not fill it"
IMMEDIATE = ("IOC", "FOK")
CONDITIONAL = ("stop_limit", "take_profit_limit", "trailing_stop_market")  # working, but armed by a price first
STOPS = ("stop_market", "stop_limit")  # triggered against the position's way: a sell stop on the way down


class _Terms:
    """One client's terms on the venue, worked out once rather than on every fill:
    `price * (1 ± slippage_bps / BPS)` and `fee_bps / BPS * qty * price` (left to right)
    multiply by these very values, exact for any setting of under 28 digits."""

    __slots__ = ("cfg", "taker_factor", "maker_fee_rate", "taker_fee_rate", "at_close", "by_volume",
                 "submit_latency_ns", "cancel_latency_ns", "jitter_ns", "queue_share")

    def __init__(self, cfg: VenueConfig) -> None:
        slip = cfg.slippage_bps / BPS
        self.cfg = cfg
        self.taker_factor = {"buy": 1 + slip, "sell": 1 - slip}
        self.maker_fee_rate = (cfg.fee_bps if cfg.maker_fee_bps is None else cfg.maker_fee_bps) / BPS
        self.taker_fee_rate = (cfg.fee_bps if cfg.taker_fee_bps is None else cfg.taker_fee_bps) / BPS
        self.at_close = cfg.fill == "close"  # market orders on bars fill at the close, else the open
        self.by_volume = cfg.fill_model == "book"
        self.submit_latency_ns = int(cfg.submit_latency_ms * 1_000_000)
        self.cancel_latency_ns = int(cfg.cancel_latency_ms * 1_000_000)
        self.jitter_ns = int(cfg.latency_jitter_ms * 1_000_000)
        self.queue_share = cfg.queue_share

    def latency_ns(self, base_ns: int, command_id: str) -> int:
        """`base_ns` plus a jitter drawn from the command's id: random-looking, and the same in every
        run, so a backtest with latency repeats exactly."""
        if not self.jitter_ns:
            return base_ns
        draw = int.from_bytes(hashlib.blake2b(command_id.encode(), digest_size=8).digest(), "big")
        return base_ns + draw % self.jitter_ns


class _Working(Struct, gc=False):
    """One working order: its terms, what remains, and its state on the venue. A Struct: made in C,
    one per order (a class's __init__ is a Python call more); untracked by the GC, as it refers to
    nothing that refers back to it."""

    order: SubmitOrder
    terms: _Terms
    remaining: Decimal
    limit: Decimal | None  # the limit on the tick grid
    decided: int  # from when market data may fill it: its decision plus the venue's submit latency
    expires: int | None  # GTD: from this market time on it is cancelled
    book: bool  # the book model on quotes (its symbol had quotes when it came): see venues/queue.py
    armed: bool  # a CONDITIONAL order not triggered yet
    # Fixed by the order's type and time in force (a modify changes neither); fields, not
    # properties: they are asked several times per order.
    protective: bool  # order_type in PROTECTIVE
    immediate: bool  # IOC or FOK: the same here, where an order fills whole or not at all
    fills: int = 0
    place: q.Place | None = None  # its standing there, once it met the book
    extreme: Decimal | None = None  # trailing stop: the best price since it was placed (sell: highest)


class ShadowVenue:
    def __init__(self, venue: str, clients: dict[str, VenueConfig], max_recent: int = 10_000) -> None:
        if max_recent < 1:
            raise ValueError(f"max_recent must be >= 1, got {max_recent}")
        self.venue = venue
        self._terms = {client: _Terms(cfg) for client, cfg in clients.items()}
        self._max_recent = max_recent
        # Kind (Bar, Trade) -> symbol -> its newest `max_recent` events, oldest first, and in
        # front of them the newest one that fell out (once one has). The deque drops the oldest by
        # itself, so keeping a bar is one append; the one in front tells an order too old to fill.
        self._recent: dict[type, dict[str, deque[MarketData]]] = {Bar: {}, Trade: {}}
        # Symbols with quotes -> their newest `max_recent` trades and quotes in the order they came, each
        # with the book (newest quote) before it: what the book model on quotes fills on, late orders too.
        self._ticks: dict[str, deque[tuple[Tick, Quote | None]]] = {}
        self._book: dict[str, Quote] = {}  # symbol -> its newest quote
        # (kind, symbol) -> the newest time at which several events came, and their ids: a trade or
        # quote of that time is checked against them at once, not against all of that time kept.
        self._same_time: dict[tuple[type, str], tuple[int, set[str]]] = {}
        self._working: dict[str, _Working] = {}  # client order id -> order, in submit order
        # Protective orders per key, keys in the order first seen: checked after the other fills.
        self._protective: dict[Key, dict[str, _Working]] = {}
        self._n_protective = 0
        self._awaiting: list[_Working] = []  # late protective orders, looked back on as a group
        self.positions = NetPositions()  # from the venue's own fills
        self._fills: dict[Key, deque[tuple[int, Decimal]]] = {}  # recent (time, signed qty) per key
        self._seen = RecentIds(100_000)  # order ids taken: a repeated submit changes nothing
        self._booked = RecentIds(100_000)  # fill ids in `positions`
        # Rebuilt from the order log: submits not answered yet, and cancels not carried out yet.
        self._unanswered: dict[str, SubmitOrder] = {}
        self._cancels: dict[str, CancelOrder] = {}

    # --- commands

    def submit(self, order: SubmitOrder) -> list[Event]:
        """Accept `order` and fill what can be filled now (or reject it, naming why)."""
        if order.venue != self.venue:
            raise ValueError(f"order {order.id} is for venue {order.venue!r}, this is {self.venue!r}")
        events = self._look_back_awaiting() if self._awaiting and order.order_type not in PROTECTIVE else []
        if not self._seen.add(order.id):
            return events
        terms = self._terms.get(order.client)
        if terms is None:
            return [*events, rejection(order.id, order, f"client {order.client!r} has no account on shadow venue {self.venue!r}")]
        if order.reduce_only:
            problem = self._adds_to_position(order)
            if problem:
                return [*events, rejection(order.id, order, problem)]
        working = self._new_working(order, terms)
        problem = self._problem(working)
        if problem:
            return [*events, rejection(order.id, order, problem)]
        # Acknowledged once the order reached the venue: its decision plus the submit latency (protective
        # orders too, whose fills do not wait for it); without latency, at the decision itself. For the
        # others that is when they may fill (`decided`, read before a trigger can move it): no second draw.
        acked = order.ts_event + terms.latency_ns(terms.submit_latency_ns, order.id) if working.protective \
            else working.decided
        if order.order_type == "market_on_close":
            last = self._recent[Bar][order.symbol][-1]
            # The data ends here: a market order still working (decided on the last bar) never sees its
            # next open, and the close was sized against the position it leaves, so it fills first.
            fills = [self._fill(w, last.close, last.ts_event) for w in list(self._working.values())
                     if w.order.order_type == "market" and w.order.client == order.client
                     and w.order.symbol == order.symbol]
            fills.append(self._fill(working, last.close, last.ts_event))
        elif working.protective:
            self._add_protective(working)
            if self._late(order):
                self._awaiting.append(working)
            fills = []
        else:
            fills = self._take_book(working) if working.book else self._take(working)
            if fills and isinstance(fills[0], OrderRejected):
                return [*events, *fills]  # too late to tell: never accepted
        accepted = OrderAccepted(id=order.id, ts_event=acked, client_order_id=order.id,
                                 venue_order_id=f"shadow-{order.id}", client=order.client, venue=order.venue,
                                 symbol=order.symbol)
        return [*events, accepted, *fills]

    def cancel(self, command: CancelOrder) -> list[Event]:
        """Cancel a working order; nothing for an order that is not working (filled, unknown)."""
        events = self._look_back_awaiting() if self._awaiting else []
        working = self._working.get(command.client_order_id) or self._protective.get(
            (command.client, command.venue, command.symbol), {}).get(command.client_order_id)
        if working is not None:
            events.append(self._canceled(working, command.reason, command.ts_event))
        return events

    def cancel_all(self, command: CancelAllOrders) -> list[Event]:
        """Every working order of the client and market, answered in OrdersCanceled of at most
        MAX_CANCELED_IDS ids each: one durable event where a kill switch has 1,000 orders to cancel."""
        events = self._look_back_awaiting() if self._awaiting else []
        key = (command.client, command.venue, command.symbol)
        canceled = [w for w in [*self._working.values(), *self._protective.get(key, {}).values()]
                    if (w.order.client, w.order.symbol) == (command.client, command.symbol)]
        for n, start in enumerate(range(0, len(canceled), MAX_CANCELED_IDS), 1):
            chunk = canceled[start:start + MAX_CANCELED_IDS]
            for working in chunk:
                self._remove(working)
            events.append(OrdersCanceled(
                id=f"{command.id}.canceled.{n}", ts_event=max(command.ts_event, *(w.order.ts_event for w in chunk)),
                client_order_ids=tuple(w.order.id for w in chunk), client=command.client, venue=command.venue,
                symbol=command.symbol, reason=command.reason))
        return events

    def modify(self, command: ModifyOrder) -> list[Event]:
        """A new quantity and/or limit for a working order, effective for the market data to come."""
        events = self._look_back_awaiting() if self._awaiting else []
        working = self._working.get(command.client_order_id)
        if working is None:
            return events
        o = working.order
        filled = o.qty - working.remaining
        qty = o.qty if command.qty is None else command.qty
        if self._oversized(o.symbol, qty):
            return events  # the order stays as it was
        if qty <= filled:
            return [*events, self._canceled(working, f"modified to {qty}, at or below the {filled} filled",
                                            command.ts_event)]
        limit = command.limit_price if command.limit_price is not None else o.limit_price
        if o.order_type == "limit" and (limit is None or limit <= 0):
            return events  # the order stays as it was: a limit order needs a positive limit
        working.order = o = replace(o, qty=qty, limit_price=limit)
        working.remaining = qty - filled
        if limit is not None and o.order_type == "limit":
            working.limit = round_price(limit, working.terms.cfg.tick_size, o.side)
            if working.place is not None and command.limit_price is not None:
                working.place = None  # a new price: to the back of its level, from the book it meets next
        events.append(OrderModified(id=f"{o.id}.m{command.id}", ts_event=command.ts_event, client_order_id=o.id,
                                    client=o.client, venue=o.venue, symbol=o.symbol, qty=qty,
                                    limit_price=o.limit_price))
        return events

    # --- the order log, after a restart

    def replay(self, entry: Event) -> None:
        """Rebuild working orders and positions from the order log; emits nothing."""
        kind = type(entry)
        if kind is SubmitOrder:
            if entry.id not in self._seen:
                self._unanswered[entry.id] = entry
        elif kind is CancelOrder:
            self._cancels[entry.client_order_id] = entry
        elif kind is OrderAccepted:
            self._seen.add(entry.client_order_id)
            order = self._unanswered.pop(entry.client_order_id, None)
            terms = None if order is None else self._terms.get(order.client)
            if order is not None and terms is not None and order.order_type != "market_on_close":
                working = self._new_working(order, terms)
                if working.protective:
                    self._add_protective(working)
                else:
                    self._working[order.id] = working
        elif kind is OrderRejected:
            self._seen.add(entry.client_order_id)
            self._unanswered.pop(entry.client_order_id, None)
        elif kind is OrderFilled:
            self._book_fill(entry)
            working = self._find(entry.client_order_id)
            if working is not None:
                working.fills += 1
                working.remaining -= entry.qty
                if working.remaining <= 0 or working.order.close_position:
                    self._remove(working)
        elif kind is OrderCanceled:
            self._replay_canceled(entry.client_order_id)
        elif kind is OrdersCanceled:
            for coid in entry.client_order_ids:
                self._replay_canceled(coid)
        elif kind is OrderModified:
            working = self._find(entry.client_order_id)
            if working is not None:
                filled = working.order.qty - working.remaining
                working.order = replace(working.order, qty=entry.qty, limit_price=entry.limit_price)
                working.remaining = entry.qty - filled

    def _replay_canceled(self, coid: str) -> None:
        self._cancels.pop(coid, None)
        working = self._find(coid)
        if working is not None:
            self._remove(working)

    def replayed(self) -> VenueState:
        """What the replay of the order log has built (services/execution/replayed.py)."""

        def state(w: _Working) -> WorkingState:
            return WorkingState(order=w.order, remaining=w.remaining, limit=w.limit, fills=w.fills)

        return VenueState(
            venue=self.venue, working=[state(w) for w in self._working.values()],
            protective=[state(w) for orders in self._protective.values() for w in orders.values()],
            positions=list(self.positions.by_key.items()),
            fills=[(key, list(kept)) for key, kept in self._fills.items()], seen=list(self._seen.oldest_first()),
            booked=list(self._booked.oldest_first()), unanswered=list(self._unanswered.values()),
            cancels=list(self._cancels.values()))

    def restore(self, state: VenueState) -> None:
        """As `replayed` found it: the venue's terms come from its configuration."""
        for s in (*state.working, *state.protective):
            working = self._new_working(s.order, self._terms[s.order.client])  # the part's accounts are ours
            working.remaining, working.limit, working.fills = s.remaining, s.limit, s.fills
            if working.protective:
                self._add_protective(working)
            else:
                self._working[s.order.id] = working
        self.positions.by_key = {tuple(key): qty for key, qty in state.positions}  # type: ignore[misc]
        self._fills = {tuple(key): deque(kept, maxlen=FILLS_KEPT) for key, kept in state.fills}  # type: ignore[misc]
        self._seen, self._booked = RecentIds.of(state.seen, self._seen.limit), RecentIds.of(state.booked,
                                                                                          self._booked.limit)
        self._unanswered = {order.id: order for order in state.unanswered}
        self._cancels = {cancel.client_order_id: cancel for cancel in state.cancels}

    def unanswered(self) -> list[Event]:
        """What the log holds that the venue never answered (it stopped in between), oldest first:
        submits to take now, then cancels of orders still working."""
        pending: list[Event] = list(self._unanswered.values())
        pending += [c for coid, c in self._cancels.items() if self._find(coid) is not None]
        self._unanswered, self._cancels = {}, {}
        return pending

    def quiet(self) -> bool:
        """Whether no market data can fill or cancel anything here now (nothing working, nothing
        looked back on): then a quote only has to be the newest one by the next command."""
        return not self._working and not self._n_protective and not self._awaiting

    def working_orders(self) -> list[str]:
        return [*self._working, *(coid for orders in self._protective.values() for coid in orders)]

    def holdings(self) -> dict[Key, tuple[list[str], Decimal]]:
        """Per client and market with a working order or a position: the orders' ids and the position."""
        held: dict[Key, tuple[list[str], Decimal]] = {}
        working = [*self._working.values(), *(w for orders in self._protective.values() for w in orders.values())]
        for w in working:
            o = w.order
            key = (o.client, o.venue, o.symbol)
            held.setdefault(key, ([], self.positions.get(key)))[0].append(o.id)
        for key, qty in self.positions.by_key.items():
            if qty and key not in held:
                held[key] = ([], qty)
        return held

    def _newest(self, symbol: str) -> MarketData | None:
        """The newest bar or trade seen for `symbol`."""
        bars, trades = self._recent[Bar].get(symbol), self._recent[Trade].get(symbol)  # per command: no loop
        if not trades:
            return bars[-1] if bars else None
        if not bars or trades[-1].ts_event > bars[-1].ts_event:
            return trades[-1]
        return bars[-1]  # a bar and a trade of the same time: the bar

    def last_price(self, symbol: str) -> Decimal | None:
        """The newest price seen for `symbol` (a bar's close or a trade's price)."""
        newest = self._newest(symbol)
        if newest is None:
            return None
        return newest.price if type(newest) is Trade else newest.close  # type: ignore[union-attr]

    def _oversized(self, symbol: str, qty: Decimal) -> str | None:
        """A size no market has: above the sanity cap on notional at the symbol's newest price."""
        price = self.last_price(symbol)
        if price is not None and qty * price > MAX_NOTIONAL:
            return (f"qty {qty} x {symbol}'s last price {price} = {qty * price:.6E} is above the sanity cap "
                    f"of {MAX_NOTIONAL} (quote currency)")
        return None

    def due_ns(self, command: SubmitOrder | CancelOrder | ModifyOrder | CancelAllOrders) -> int | None:
        """The market time from which a command applies: its decision (an order's submit latency
        only delays its fills, see `_new_working`), plus the cancel latency for the other commands."""
        if type(command) is SubmitOrder or command.market_ns is None:  # first: most commands are submits
            return command.market_ns
        terms = self._terms.get(command.client)
        if terms is None:
            return command.market_ns
        return command.market_ns + terms.latency_ns(terms.cancel_latency_ns, command.id)

    def market_ns(self, symbol: str) -> int | None:
        """The newest market time seen for `symbol`, the venue's own notion of now there."""
        newest = self._newest(symbol)
        return None if newest is None else newest.ts_event

    def reached(self, symbol: str, ts: int) -> bool:
        """Whether the venue's market data for `symbol` has reached market time `ts` (`market_ns` >= ts),
        in one call: asked of every command."""
        bars = self._recent[Bar].get(symbol)
        if bars and bars[-1].ts_event >= ts:
            return True  # most commands, on bars: no look at the trades
        trades = self._recent[Trade].get(symbol)
        return bool(trades) and trades[-1].ts_event >= ts

    # --- market data

    def on_market(self, md: MarketData) -> Sequence[Event]:
        """A bar or a trade of this venue: kept for orders that arrive late, and checked against
        the working orders; returns the fills (and the cancels of OCO siblings)."""
        if self._awaiting:  # late protective orders first: due on kept data, before this event
            return [*self._look_back_awaiting(), *self.on_market(md)]  # (which finds none awaiting)
        by_symbol = self._recent[type(md)]
        recent = by_symbol.get(md.symbol)
        if recent is None:
            recent = by_symbol[md.symbol] = deque(maxlen=self._max_recent + 1)
        elif md.ts_event <= recent[-1].ts_event and (md.ts_event < recent[-1].ts_event
                                                     or self._repeated(md, reversed(recent))):
            return NOTHING  # a repeated or older event: fills must not move with delivery order
        recent.append(md)
        if self._ticks:  # tested first: a venue without quotes (most) skips the lookup on every event
            ticks = self._ticks.get(md.symbol)
            if ticks is not None and type(md) is Trade:
                ticks.append((md, self._book[md.symbol]))
        else:
            ticks = None
        if not self._working and not self._n_protective:
            return NOTHING  # nothing to fill: the usual case, most bars
        fills: list[Event] = []
        if self._working:
            for working in list(self._working.values()):  # a copy: a fill takes the order out
                if working.order.symbol == md.symbol:
                    if working.book:  # its bars fill nothing: they sum the trades it fills on
                        if ticks is not None and type(md) is Trade:
                            fills += self._book_event(working, md, ticks[-1][1])  # type: ignore[arg-type]
                        continue
                    if working.terms.by_volume and type(md) is Bar and md.symbol in self._recent[Trade]:
                        continue  # the book model fills on a symbol's trades where it has them, not their bars
                    if working.expires is not None and md.ts_event >= working.expires:
                        fills.append(self._expired(working))
                        continue
                    hit = self._fill_at(working, md)
                    if hit is not None:
                        fills += self._fill_on(working, md, hit)
                    elif working.immediate and self._fill_ts(working, md) >= working.decided:
                        fills.append(self._canceled(working, IOC_MISSED, md.ts_event))
        if self._n_protective:
            for key, orders in self._protective.items():
                if orders and key[2] == md.symbol:
                    self._trigger_group(key, list(orders.values()), md, self.positions.get(key), fills)
        return fills

    on_bar = on_trade = on_market  # one handler, not a wrapper each: it runs on every bar

    # --- rules

    def _new_working(self, order: SubmitOrder, terms: _Terms) -> _Working:
        if order.order_type != "limit" or order.limit_price is None or order.limit_price <= 0:
            limit = None
        else:
            limit = round_price(order.limit_price, terms.cfg.tick_size, order.side)
        protective = order.order_type in PROTECTIVE
        if protective:
            latency = 0
        else:  # drawn only with a jitter: without one (most accounts), a call less per order
            latency = (terms.latency_ns(terms.submit_latency_ns, order.id) if terms.jitter_ns
                       else terms.submit_latency_ns)
        expires = order.expire_ns if order.time_in_force == "GTD" else None
        book = terms.by_volume and order.symbol in self._ticks and order.order_type in ("market", "limit")
        return _Working(order, terms, order.qty, limit, order.ts_event + latency, expires, book,
                        order.order_type in CONDITIONAL, protective, order.time_in_force in IMMEDIATE)

    def _problem(self, working: _Working) -> str | None:
        """Why the order cannot be taken, or None (whether its fill data is still kept: see `_take`)."""
        o = working.order
        if o.close_position:
            if not working.protective:
                return f"close_position is for stop_market / take_profit_market orders, not {o.order_type}"
        elif o.qty <= 0:
            return f"qty must be > 0, got {o.qty}"
        if o.order_type != "market":  # the usual order: none of these prices is asked of it
            if o.order_type == "limit" and (working.limit is None or working.limit <= 0):
                return (f"limit order needs a limit price > 0 on tick {working.terms.cfg.tick_size}, "
                        f"got {o.limit_price}")
            if (working.protective or o.order_type in ("stop_limit", "take_profit_limit")) and (
                    o.stop_price is None or o.stop_price <= 0):
                return f"{o.order_type} order needs a stop price > 0, got {o.stop_price}"
            if o.order_type in ("stop_limit", "take_profit_limit") and (o.limit_price is None or o.limit_price <= 0):
                return f"{o.order_type} order needs a limit price > 0, got {o.limit_price}"
            if o.order_type == "trailing_stop_market" and not (o.trailing_bps is not None
                                                               and 0 < o.trailing_bps < BPS):
                return f"trailing_stop_market order needs trailing_bps in (0, 10000), got {o.trailing_bps}"
        if o.time_in_force == "GTD" and (o.expire_ns is None or o.expire_ns <= o.ts_event):
            return f"GTD needs an expire_ns after the order's decision time {o.ts_event}, got {o.expire_ns}"
        if o.order_type == "market_on_close" and o.symbol not in self._recent[Bar]:
            return f"market_on_close: no bar seen for {o.symbol} to close at"
        if o.post_only:
            if o.order_type != "limit":
                return f"post-only is for limit orders, not {o.order_type}"
            last = self.last_price(o.symbol)
            if last is not None and (working.limit >= last if o.side == "buy" else working.limit <= last):  # type: ignore[operator]
                return f"post-only: a {o.side} limit of {working.limit} would take liquidity at the last price {last}"
        return self._oversized(o.symbol, o.qty)

    def _adds_to_position(self, order: SubmitOrder) -> str | None:
        """Why a reduce-only order cannot be placed now (it is trimmed to the position when it fills)."""
        position = self.positions.get((order.client, order.venue, order.symbol))
        if position == 0 or (position > 0) == (order.side == "buy"):
            return f"reduce-only: a {order.side} would increase the position {position}"
        return None

    def _fill_ts(self, working: _Working, md: MarketData) -> int:
        """The time at which `md` would fill the order: compared with the decision time."""
        # type(), not isinstance: a miss on a msgspec Struct class costs an __instancecheck__ call.
        if type(md) is Trade:
            return md.ts_event
        market_at_close = working.terms.at_close and working.order.order_type == "market"
        return md.ts_event if market_at_close else md.ts_open

    def _fill_at(self, working: _Working, md: MarketData) -> tuple[int, Decimal] | None:
        """(time, price before slippage) at which `md` fills the order; None when it does not fill it."""
        ts = self._fill_ts(working, md)
        if ts < working.decided or (working.expires is not None and ts >= working.expires):
            return None
        if working.armed:
            return self._triggered(working, md, ts)
        limit = working.limit
        if limit is None:  # a market order (the side only matters to a limit)
            if type(md) is Trade:
                return ts, md.price
            return ts, md.close if working.terms.at_close else md.open
        buy = working.order.side == "buy"
        if type(md) is Trade:
            return (ts, limit) if (md.price < limit if buy else md.price > limit) else None
        return (ts, limit) if (md.low < limit if buy else md.high > limit) else None

    def _triggered(self, working: _Working, md: MarketData, ts: int) -> tuple[int, Decimal] | None:
        """An armed order against `md`. A stop or take-profit limit that `md` reaches becomes a limit
        order from then on (it fills from the next market data: which came first within a bar is not
        known); a trailing stop that `md` brings back its distance from the best price fills like a
        stop market there. None, but for that fill."""
        o = working.order
        if o.order_type != "trailing_stop_market":
            if _trigger_price(o, md) is not None:
                working.armed = False
                working.limit = round_price(o.limit_price, working.terms.cfg.tick_size, o.side)  # type: ignore[arg-type]
                working.decided = md.ts_event  # the bar's close, or the trade itself
            return None
        if type(md) is Trade:
            open_ = high = low = md.price
        else:
            open_, high, low = md.open, md.high, md.low  # type: ignore[union-attr]
        sell = o.side == "sell"
        gap = o.trailing_bps / BPS  # type: ignore[operator]
        best = working.extreme if working.extreme is not None else open_
        level = best * (1 - gap) if sell else best * (1 + gap)
        # Against the best before this event first (within a bar, the path is not known), then the best moves.
        if (low <= level) if sell else (high >= level):
            return ts, (min(level, open_) if sell else max(level, open_))
        working.extreme = max(best, high) if sell else min(best, low)
        return None

    def _take(self, working: _Working) -> list[Event]:
        """A new order against the kept events: filled on the earliest that qualifies (the order
        arrived after its fill data), else working; rejected when the event in front of the kept
        ones, which fell out of them, could have filled it (what fell out before is not known)."""
        best: tuple[int, Decimal] | None = None
        best_md: MarketData | None = None
        seen_after = False  # any market data at/after the decision: an IOC order had its chance
        o, decided = working.order, working.decided
        for kind, by_symbol in self._recent.items():
            recent = by_symbol.get(o.symbol)
            if recent is None or (kind is Bar and working.terms.by_volume and o.symbol in self._recent[Trade]):
                continue
            # An event fills at or before its ts_event (a bar's open or close), and kept events are in
            # ts_event order: those that ended before the decision cannot fill, so start after them.
            # Usually that leaves none (the order came in time) or only the newest one, and the event
            # in front is only looked at when all of them ended at/after the decision.
            n = len(recent)
            start = _first_at_or_after(recent, decided)
            seen_after = seen_after or start < n
            if start == 0 and n > self._max_recent and self._fill_ts(working, recent[0]) >= decided:
                return [rejection(o.id, o, f"decided at {decided} ns, before the {self._max_recent} most recent "
                                    f"{kind.__name__.lower()}s kept for {o.symbol}: cannot tell where it "
                                    f"would have filled")]
            end = min(start + 1, n) if working.immediate else n  # IOC: the first only
            for i in range(start, end):  # by index: islice would walk the deque from its start
                hit = self._fill_at(working, recent[i])
                if hit is not None:
                    if best is None or hit[0] < best[0]:
                        best, best_md = hit, recent[i]
                    break
        self._working[o.id] = working
        if best is None:
            return [self._canceled(working, IOC_MISSED, decided)] if working.immediate and seen_after else []
        if working.terms.by_volume:
            return self._take_by_volume(working)
        return self._fill_on(working, best_md, best)  # type: ignore[arg-type]

    def _take_by_volume(self, working: _Working) -> list[Event]:
        """The book model's late path: every kept event from the decision on, in the order they
        would have filled it, each taking what traded there, as the working path does."""
        o = working.order
        hits = []
        for kind, by_symbol in self._recent.items():
            recent = by_symbol.get(o.symbol)
            if recent and not (kind is Bar and o.symbol in self._recent[Trade]):  # trades, where it has them
                for i in range(_first_at_or_after(recent, working.decided), len(recent)):
                    hit = self._fill_at(working, recent[i])
                    if hit is not None:
                        hits.append((hit, recent[i]))
        hits.sort(key=lambda h: h[0][0])  # by fill time; stable, so bars before trades of the same time
        events: list[Event] = []
        for hit, md in hits[:1] if working.immediate else hits:
            events += self._fill_on(working, md, hit)
            if working.remaining <= 0 or o.id not in self._working:
                break
        return events

    def _repeated(self, md: MarketData | Quote, newest_first: Iterable[MarketData | Quote]) -> bool:
        """Whether `md`, of the newest time kept for its kind and symbol, was kept already; if not,
        it is remembered as kept (the caller keeps it). The ids of that time are read from
        `newest_first` once per time, then held in a set."""
        key = (type(md), md.symbol)
        held = self._same_time.get(key)
        if held is None or held[0] != md.ts_event:
            ids = set()
            for kept in newest_first:
                if kept.ts_event < md.ts_event:
                    break
                ids.add(kept.id)
            held = self._same_time[key] = (md.ts_event, ids)
        if md.id in held[1]:
            return True
        held[1].add(md.id)
        return False

    # --- the book model on quotes (see venues/queue.py)

    def on_quote(self, quote: Quote) -> Sequence[Event]:
        """A best bid/ask: kept with its symbol's trades, and checked against the book model's
        working orders and the protective ones; returns the fills."""
        if self._awaiting:  # late protective orders first (see on_market)
            return [*self._look_back_awaiting(), *self.on_quote(quote)]
        symbol = quote.symbol
        before = self._book.get(symbol)
        ticks = self._ticks.get(symbol)
        if ticks is None:
            ticks = self._ticks[symbol] = deque(maxlen=self._max_recent + 1)
        elif before is not None and quote.ts_event <= before.ts_event and (
                quote.ts_event < before.ts_event or self._repeated(quote, (t for t, _ in reversed(ticks)))):
            return NOTHING  # a repeated or older quote
        ticks.append((quote, before))
        self._book[symbol] = quote
        if not self._working and not self._n_protective:
            return NOTHING  # nothing to fill: most quotes, many to a bar; no list made for them
        fills: list[Event] = []
        if self._working:
            for working in list(self._working.values()):
                if working.book and working.order.symbol == symbol:
                    fills += self._book_event(working, quote, before)
        if self._n_protective:
            for key, orders in self._protective.items():
                if orders and key[2] == symbol:
                    self._trigger_group(key, list(orders.values()), quote, self.positions.get(key), fills)
        return fills

    def _take_book(self, working: _Working) -> list[Event]:
        """A new order of the book model. It arrives at its decision time (plus the submit latency),
        after every event up to then, and meets the newest quote before it; what came after that
        (it came late) is run through as it would have met it working. Rejected when what it
        arrived at fell out of the kept trades and quotes."""
        o = working.order
        ticks = self._ticks[o.symbol]
        start = len(ticks)
        while start and ticks[start - 1][0].ts_event > working.decided:
            start -= 1
        if start == 0 and len(ticks) > self._max_recent:
            return [rejection(o.id, o, f"decided at {working.decided} ns, before the {self._max_recent} most recent "
                                       f"trades and quotes kept for {o.symbol}: cannot tell where it would have filled")]
        self._working[o.id] = working
        if start < len(ticks):
            book = ticks[start][1]
        else:  # nothing after it yet: it arrives now if the venue's market data has reached its time
            now = max(self.market_ns(o.symbol) or 0, ticks[-1][0].ts_event if ticks else 0)
            book = self._book.get(o.symbol) if now >= working.decided else None
        events = self._arrive(working, book) if book is not None else []
        for i in range(start, len(ticks)):
            if o.id not in self._working:
                break
            md, before = ticks[i]
            events += self._book_event(working, md, before)
        return events

    def _book_event(self, working: _Working, md: Tick, book: Quote | None) -> list[Event]:
        """One trade or quote for an order of the book model; `book` is the newest quote before it.
        An order arrives before the first event after its decision time (and latency): it meets
        `book` there, and takes or rests."""
        ts = md.ts_event
        if ts <= working.decided:
            return []
        if working.expires is not None and ts >= working.expires:
            return [self._expired(working)]
        o, place = working.order, working.place
        events: list[Event] = []
        if place is None:
            if book is None:
                return events  # no book to meet yet: it meets the first one
            events = self._arrive(working, book)
            place = working.place
            if o.id not in self._working or place is None:
                return events
        limit = working.limit
        if place.taking:
            if type(md) is Quote:
                events += self._take_quote(working, md, ts)  # type: ignore[arg-type]
        elif type(md) is Quote:
            if q.crosses(limit, o.side, md):  # type: ignore[arg-type]
                events += self._crossed(working, md, ts)  # type: ignore[arg-type]
            else:
                q.queue_on_quote(place, limit, o.side, md)  # type: ignore[arg-type]
        else:
            traded = q.traded_for(place, limit, o.side, md)  # type: ignore[arg-type]
            if traded:
                events += self._fill_on(working, md, (ts, limit), available=traded, maker=True)  # type: ignore[arg-type]
        return events

    def _arrive(self, working: _Working, book: Quote) -> list[Event]:
        """The order meets the book (at its arrival time, or that of the first quote it finds): a
        market order, or a limit that reaches the opposite best, takes there; any other limit rests
        behind the queue at its price (IOC/FOK: cancelled instead)."""
        o, limit = working.order, working.limit
        ts = max(working.decided, book.ts_event)
        if limit is not None and not q.crosses(limit, o.side, book):
            working.place = q.Place(queue=q.queue_on_arrival(limit, o.side, book, working.terms.queue_share))
            return [self._canceled(working, IOC_MISSED, ts)] if working.immediate else []
        if o.post_only:
            price = q.opposite_best(book, o.side)[0]
            return [self._canceled(working, f"post-only: a {o.side} limit of {limit} would take at the best "
                                            f"{'ask' if o.side == 'buy' else 'bid'} {price}", ts)]
        working.place = q.Place(taking=True)
        return self._take_quote(working, book, ts)

    def _take_quote(self, working: _Working, quote: Quote, ts: int) -> list[Event]:
        """A taking order against a best bid/ask: what is shown at the opposite best, up to its limit;
        once the opposite best is past its limit, the rest rests there, first in its queue."""
        o, place = working.order, working.place
        assert place is not None
        if working.limit is not None and not q.crosses(working.limit, o.side, quote):
            place.taking = False
            return []
        price, shown = q.opposite_best(quote, o.side)
        before = working.remaining
        events = self._fill_on(working, quote, (ts, price), available=q.available_to_take(place, price, shown),
                               maker=False)
        q.took(place, price, before - working.remaining)
        return events

    def _crossed(self, working: _Working, quote: Quote, ts: int) -> list[Event]:
        """A resting limit whose opposite best reached its price: nothing is ahead of it any more, and it
        fills as maker at its limit for what that best shows beyond what it had there already."""
        o, place = working.order, working.place
        assert place is not None
        place.queue = ZERO
        price, shown = q.opposite_best(quote, o.side)
        before = working.remaining
        events = self._fill_on(working, quote, (ts, working.limit), available=q.available_to_take(place, price, shown),
                               maker=True)
        q.took(place, price, before - working.remaining)
        return events

    def _expired(self, working: _Working) -> OrderCanceled:
        return self._canceled(working, f"GTD: expired at {working.expires} ns", working.expires or 0)

    # --- protective orders

    def _add_protective(self, working: _Working) -> None:
        o = working.order
        self._protective.setdefault((o.client, o.venue, o.symbol), {})[o.id] = working
        self._n_protective += 1

    def _late(self, order: SubmitOrder) -> bool:
        """Whether market data after the order's decision is kept already: then it is looked back on."""
        last = self.market_ns(order.symbol)
        return last is not None and last > order.ts_event

    def _trigger_group(self, key: Key, orders: list[_Working], md: MarketData, position: Decimal,
                       out: list[Event]) -> bool:
        """Fill the first of `orders` (stops before take-profits) that `md` triggers, given the
        position held then; cancel its OCO group. True when one filled."""
        if not position:
            return False
        for working in sorted(orders, key=_stops_first):
            o = working.order
            if (o.side == "sell") != (position > 0) or _opened_at(md) < o.ts_event:
                continue
            price = _trigger_price(o, md)
            if price is None:
                continue
            qty = round_qty(abs(position), working.terms.cfg.step_size) if o.close_position else min(
                working.remaining, abs(position))
            if qty > 0:
                working.remaining = qty
                out.append(self._fill(working, price, md.ts_event))
                reason = f"oco: {o.id} filled"
            else:
                out.append(self._canceled(working, "triggered with nothing to close on the step", md.ts_event))
                reason = f"oco: {o.id} triggered with nothing to close"
            if o.oco is not None:
                for sibling in list(self._protective[key].values()):
                    if sibling.order.oco == o.oco:
                        out.append(self._canceled(sibling, reason, md.ts_event))
            return True
        return False

    def _look_back_awaiting(self) -> list[Event]:
        """Late protective orders against the kept market data since their decision, a key's
        orders together (so an OCO pair fills as it would have live), at the position held then."""
        awaiting, self._awaiting = self._awaiting, []
        out: list[Event] = []
        by_key: dict[Key, list[_Working]] = {}
        for working in awaiting:
            o = working.order
            by_key.setdefault((o.client, o.venue, o.symbol), []).append(working)
        for key, orders in by_key.items():
            decided = min(w.order.ts_event for w in orders)
            candidates = [recent for by_symbol in self._recent.values()
                          if (recent := by_symbol.get(key[2])) is not None]
            for recent in candidates:
                for i in range(_first_at_or_after(recent, decided), len(recent)):
                    md = recent[i]
                    live = [w for w in orders if w.order.id in self._protective.get(key, {})]
                    if not live or self._trigger_group(key, live, md, self._position_at(key, md.ts_event), out):
                        break
        return out

    def _position_at(self, key: Key, ts: int) -> Decimal:
        """The position at `ts`: today's less the fills after it."""
        later = sum((q for t, q in self._fills.get(key, ()) if t > ts), ZERO)
        return self.positions.get(key) - later

    # --- effects

    def _fill_on(self, working: _Working, md: MarketData | Quote, hit: tuple[int, Decimal],
                 available: Decimal | None = None, maker: bool | None = None) -> list[Event]:
        """`md` fills the order at `hit`: all of what remains, or in the book model what traded
        there (IOC: the rest cancelled; FOK: nothing unless all of it); a reduce-only order at most
        the position it reduces then (other orders may have changed it since it was placed), the
        rest cancelled. `available` is what the book model on quotes found to fill on instead."""
        o = working.order
        if not (o.reduce_only or working.terms.by_volume or working.immediate):
            return [self._fill(working, hit[1], hit[0], maker=maker)]  # the usual order: all of it, nothing to trim
        qty = working.remaining
        cap = None
        if o.reduce_only:
            position = self._position_at((o.client, o.venue, o.symbol), hit[0])
            if position == 0 or (position > 0) == (o.side == "buy"):
                return [self._canceled(working, f"reduce-only: nothing left to reduce (position {position})", hit[0])]
            cap = qty = min(qty, abs(position))
        if working.terms.by_volume:
            if available is not None:
                traded = available
            else:
                traded = md.qty if type(md) is Trade else working.terms.cfg.bar_volume_share * md.volume  # type: ignore[union-attr]
            qty = min(qty, round_qty(traded, working.terms.cfg.step_size))
            if o.time_in_force == "FOK" and qty < working.remaining:
                return [self._canceled(working, "FOK: not all of it traded on the first market data after it", hit[0])]
        events: list[Event] = [self._fill(working, hit[1], hit[0], qty, maker)] if qty > 0 else []
        if working.remaining > 0 and qty == cap:
            events.append(self._canceled(working, "reduce-only: trimmed to the position it reduced", hit[0]))
        elif working.immediate and working.remaining > 0:
            events.append(self._canceled(working, IOC_MISSED, hit[0]))
        return events

    def _fill(self, working: _Working, price: Decimal, ts: int, qty: Decimal | None = None,
              maker: bool | None = None) -> OrderFilled:
        """Fill `qty` (all that remains by default) at `price` (slipped when taker); a limit order
        fills as maker unless `maker` says otherwise."""
        o, terms = working.order, working.terms
        if maker is None:
            maker = working.limit is not None
        if not maker:
            price = price * terms.taker_factor[o.side]
        if qty is None or qty >= working.remaining:
            qty, working.remaining = working.remaining, ZERO
            if self._working.pop(o.id, None) is None:  # most fills: no call to _remove for them
                self._remove_protective(working)
        else:
            working.remaining -= qty
        working.fills += 1
        fill = OrderFilled(id=f"{o.id}.{working.fills}", ts_event=ts, client_order_id=o.id, client=o.client,
                           venue=o.venue, symbol=o.symbol, side=o.side, qty=qty, price=price,
                           fee=(terms.maker_fee_rate if maker else terms.taker_fee_rate) * qty * price,
                           liquidity="maker" if maker else "taker",
                           reason=o.reason)
        self._book_fill(fill)
        return fill

    def _book_fill(self, fill: OrderFilled) -> None:
        if not self._booked.add(fill.id):
            return  # our own fill's echo, or one replayed twice
        self.positions.apply(fill)
        key = (fill.client, fill.venue, fill.symbol)
        kept = self._fills.get(key)
        if kept is None:
            kept = self._fills[key] = deque(maxlen=FILLS_KEPT)
        kept.append((fill.ts_event, signed(fill.side, fill.qty)))

    # A fill on an account of this venue from the order log: its own echo (ignored) or one made
    # elsewhere, by hand or by reconciliation, which its protective orders must see. The method
    # itself, not a wrapper: each of the venue's own fills comes back once as an echo.
    on_fill = _book_fill

    def _canceled(self, working: _Working, reason: str, ts: int) -> OrderCanceled:
        o = working.order
        self._remove(working)
        return OrderCanceled(id=o.id, ts_event=max(ts, o.ts_event), client_order_id=o.id, client=o.client,
                             venue=o.venue, symbol=o.symbol, reason=reason)

    def _find(self, coid: str) -> _Working | None:
        working = self._working.get(coid)
        if working is None and self._n_protective:
            for orders in self._protective.values():
                if coid in orders:
                    return orders[coid]
        return working

    def _remove(self, working: _Working) -> None:
        if self._working.pop(working.order.id, None) is None:
            self._remove_protective(working)

    def _remove_protective(self, working: _Working) -> None:
        o = working.order
        orders = self._protective.get((o.client, o.venue, o.symbol))
        if orders is not None and orders.pop(o.id, None) is not None:
            self._n_protective -= 1


def _first_at_or_after(recent: deque[MarketData], ts: int) -> int:
    """The index of the first kept event that ended at or after `ts`: usually the newest or none,
    looked at first; further back (an order that reaches the venue after many newer events, as a
    lagging process's does) by bisection, not by walking back event by event."""
    n = len(recent)
    if not n or recent[-1].ts_event < ts:
        return n
    if n == 1 or recent[-2].ts_event < ts:
        return n - 1
    return bisect_left(recent, ts, 0, n - 2, key=_ended)


def _ended(md: MarketData) -> int:
    return md.ts_event


def _opened_at(md: MarketData | Quote) -> int:
    return md.ts_open if type(md) is Bar else md.ts_event  # type: ignore[union-attr]


def _stops_first(working: _Working) -> int:
    return 0 if working.order.order_type in STOPS else 1


def _trigger_price(order: SubmitOrder, md: MarketData) -> Decimal | None:
    """The price (before slippage) a protective order fills at on `md`: its level, or the open
    when the market opened through it; None when `md` does not reach it."""
    level = order.stop_price
    assert level is not None  # _problem refuses protective orders without one
    if type(md) is Trade:
        open_ = high = low = md.price
    elif type(md) is Quote:  # where the position closes: a sell at the bid, a buy at the ask
        open_ = high = low = md.bid if order.side == "sell" else md.ask  # type: ignore[attr-defined]
    else:
        open_, high, low = md.open, md.high, md.low
    # A sell stop (under a long) and a buy take-profit (under a short) trigger on the way down.
    down = (order.side == "sell") == (order.order_type in STOPS)
    if down:
        return min(level, open_) if low <= level else None
    return max(level, open_) if high >= level else None
