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
- market_on_close: at once, at the close of the last bar seen for the symbol;
- latency: an order may fill only on market data from its decision + `submit_latency_ms` on
  (protective orders: from the decision), and a cancel, modify or cancel-all takes effect at
  its decision + `cancel_latency_ms` (the adapter holds it until then), so a cancel can lose the
  race to a fill; `latency_jitter_ms` adds up to that much, drawn from the command's id;
- fill_model "book": each event fills at most what traded there (`bar_volume_share` of a bar's
  volume, a trade's own size, rounded down to the step); the rest stays working and fills on the
  events that follow. Protective and market_on_close orders still fill whole;
- time in force IOC or FOK (the same here, where an order fills whole or not at all): only the
  first event at/after the decision may fill it, else it is cancelled; post-only: a limit at or
  through the newest price is rejected; reduce-only: rejected when it would increase the
  position, and filled at most for the position it reduces when it fills (the rest cancelled);
- stop_market / take_profit_market (protective: they close the position, so they trigger
  only while the client holds one on the side they close): the first bar (ts_open >= decided)
  or trade whose range reaches the level, after the bar's other fills, at the level or at
  the open when the bar opened through it, at the bar's close time. A stop-loss is a
  sell stop under a long (buy stop over a short); a take-profit the other way round. A
  bar that reaches both fills the stop first. The first of an `oco` group to fill cancels
  the rest; a `close_position` order closes what is held then, rounded to the step.

Taker fills pay `slippage_bps` against the order (buy x (1 + bps/10000), sell x (1 - bps/10000));
the result is NOT rounded to the tick: a taker fill that walks the book averages to an
off-grid price too. Fee = bps/10000 x qty x fill price (quote currency): `maker_fee_bps` for a
limit order's fill, `taker_fee_bps` for the rest, each `fee_bps` when not set.

An order can reach the venue after the market data it should fill on (the adapter applies a
command only once the market has reached its decision time, so never before): the newest
`max_recent` bars and trades per symbol are kept, and a late order fills where it would have
had it come in time. One decided before everything kept is rejected rather than filled on a
guess. When a symbol gets both bars and trades, a resting order fills on whichever qualifying
event arrives first; run shadow fills on one kind of market data per symbol for exact repeats."""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from msgspec.structs import replace

from bosun.model.grid import round_price, round_qty
from bosun.model.positions import Key, NetPositions, signed
from bosun.model.recent import RecentIds
from proto.amounts import MAX_NOTIONAL
from proto.events import (MAX_CANCELED_IDS, Bar, CancelAllOrders, CancelOrder, Event, ModifyOrder, OrderAccepted,
                          OrderCanceled, OrderFilled, OrderModified, OrderRejected, OrdersCanceled, SubmitOrder, Trade)
from services.execution.config import VenueConfig
from services.execution.orders import PROTECTIVE, rejection

BPS = Decimal(10_000)
ZERO = Decimal(0)
FILLS_KEPT = 256  # per key, to know the position at a kept bar's time for a late protective order

MarketData = Bar | Trade
NOTHING: tuple[Event, ...] = ()
IOC_MISSED = "IOC/FOK: the first market data after it did not fill it"


class _Terms:
    """One client's terms on the venue, worked out once rather than on every fill:
    `price * (1 ± slippage_bps / BPS)` and `fee_bps / BPS * qty * price` (left to right)
    multiply by these very values, exact for any setting of under 28 digits."""

    __slots__ = ("cfg", "taker_factor", "maker_fee_rate", "taker_fee_rate", "at_close", "by_volume",
                 "submit_latency_ns", "cancel_latency_ns", "jitter_ns")

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

    def latency_ns(self, base_ns: int, command_id: str) -> int:
        """`base_ns` plus a jitter drawn from the command's id: random-looking, and the same in every
        run, so a backtest with latency repeats exactly."""
        if not self.jitter_ns:
            return base_ns
        draw = int.from_bytes(hashlib.blake2b(command_id.encode(), digest_size=8).digest(), "big")
        return base_ns + draw % self.jitter_ns


@dataclass(slots=True)
class _Working:
    order: SubmitOrder
    terms: _Terms
    remaining: Decimal
    limit: Decimal | None  # the limit on the tick grid
    decided: int = 0  # from when market data may fill it: its decision plus the venue's submit latency
    fills: int = 0

    @property
    def protective(self) -> bool:
        return self.order.order_type in PROTECTIVE

    @property
    def immediate(self) -> bool:
        """IOC or FOK: the same here, where an order fills whole or not at all."""
        return self.order.time_in_force != "GTC"


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
        if order.order_type == "market_on_close":
            last = self._recent[Bar][order.symbol][-1]
            fills = [self._fill(working, last.close, last.ts_event)]
        elif working.protective:
            self._add_protective(working)
            if self._late(order):
                self._awaiting.append(working)
            fills = []
        else:
            fills = self._take(working)
            if fills and isinstance(fills[0], OrderRejected):
                return [*events, *fills]  # too late to tell: never accepted
        accepted = OrderAccepted(id=order.id, ts_event=order.ts_event, client_order_id=order.id,
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

    def unanswered(self) -> list[Event]:
        """What the log holds that the venue never answered (it stopped in between), oldest first:
        submits to take now, then cancels of orders still working."""
        pending: list[Event] = list(self._unanswered.values())
        pending += [c for coid, c in self._cancels.items() if self._find(coid) is not None]
        self._unanswered, self._cancels = {}, {}
        return pending

    def on_fill(self, fill: OrderFilled) -> None:
        """A fill on an account of this venue from the order log: its own echo (ignored) or one made
        elsewhere, by hand or by reconciliation, which its protective orders must see."""
        self._book_fill(fill)

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
        newest: MarketData | None = None
        for by_symbol in self._recent.values():
            recent = by_symbol.get(symbol)
            if recent and (newest is None or recent[-1].ts_event > newest.ts_event):
                newest = recent[-1]
        return newest

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
        terms = self._terms.get(command.client)
        if command.market_ns is None or terms is None or type(command) is SubmitOrder:
            return command.market_ns
        return command.market_ns + terms.latency_ns(terms.cancel_latency_ns, command.id)

    def market_ns(self, symbol: str) -> int | None:
        """The newest market time seen for `symbol`, the venue's own notion of now there."""
        newest = self._newest(symbol)
        return None if newest is None else newest.ts_event

    # --- market data

    def on_market(self, md: MarketData) -> Sequence[Event]:
        """A bar or a trade of this venue: kept for orders that arrive late, and checked against
        the working orders; returns the fills (and the cancels of OCO siblings)."""
        # Late protective orders first: they are due on kept data, before this event.
        fills = self._look_back_awaiting() if self._awaiting else None
        by_symbol = self._recent[type(md)]
        recent = by_symbol.get(md.symbol)
        if recent is None:
            recent = by_symbol[md.symbol] = deque(maxlen=self._max_recent + 1)
        elif md.ts_event <= recent[-1].ts_event and (md.ts_event < recent[-1].ts_event
                                                     or any(m.id == md.id for m in recent)):
            return fills or NOTHING  # a repeated or older event: fills must not move with delivery order
        recent.append(md)
        if not self._working and not self._n_protective:
            return fills or NOTHING  # nothing to fill: the usual case, most bars
        if fills is None:
            fills = []
        if self._working:
            for working in list(self._working.values()):  # a copy: a fill takes the order out
                if working.order.symbol == md.symbol:
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
        latency = 0 if order.order_type in PROTECTIVE else terms.latency_ns(terms.submit_latency_ns, order.id)
        return _Working(order, terms, order.qty, limit, order.ts_event + latency)

    def _problem(self, working: _Working) -> str | None:
        """Why the order cannot be taken, or None (whether its fill data is still kept: see `_take`)."""
        o = working.order
        if o.close_position:
            if not working.protective:
                return f"close_position is for stop_market / take_profit_market orders, not {o.order_type}"
        elif o.qty <= 0:
            return f"qty must be > 0, got {o.qty}"
        if o.order_type == "limit" and (working.limit is None or working.limit <= 0):
            return (f"limit order needs a limit price > 0 on tick {working.terms.cfg.tick_size}, "
                    f"got {o.limit_price}")
        if working.protective and (o.stop_price is None or o.stop_price <= 0):
            return f"{o.order_type} order needs a stop price > 0, got {o.stop_price}"
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
        if ts < working.decided:
            return None
        limit, buy = working.limit, working.order.side == "buy"
        if type(md) is Trade:
            if limit is None:
                return ts, md.price
            return (ts, limit) if (md.price < limit if buy else md.price > limit) else None
        if limit is None:
            return ts, md.close if working.terms.at_close else md.open
        return (ts, limit) if (md.low < limit if buy else md.high > limit) else None

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
            if recent is None:
                continue
            # An event fills at or before its ts_event (a bar's open or close), and kept events are in
            # ts_event order: those that ended before the decision cannot fill, so start after them.
            # Usually that leaves only the newest one or none, and the event in front is only
            # looked at when all of them ended at/after the decision.
            start = _first_at_or_after(recent, decided)
            seen_after = seen_after or start < len(recent)
            if start == 0 and len(recent) > self._max_recent and self._fill_ts(working, recent[0]) >= decided:
                return [rejection(o.id, o, f"decided at {decided} ns, before the {self._max_recent} most recent "
                                    f"{kind.__name__.lower()}s kept for {o.symbol}: cannot tell where it "
                                    f"would have filled")]
            end = min(start + 1, len(recent)) if working.immediate else len(recent)  # IOC: the first only
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
        for by_symbol in self._recent.values():
            recent = by_symbol.get(o.symbol)
            if recent:
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

    def _fill_on(self, working: _Working, md: MarketData, hit: tuple[int, Decimal]) -> list[Event]:
        """`md` fills the order at `hit`: all of what remains, or in the book model what traded
        there (IOC: the rest cancelled; FOK: nothing unless all of it); a reduce-only order at most
        the position it reduces then (other orders may have changed it since it was placed), the
        rest cancelled."""
        o = working.order
        qty = working.remaining
        cap = None
        if o.reduce_only:
            position = self._position_at((o.client, o.venue, o.symbol), hit[0])
            if position == 0 or (position > 0) == (o.side == "buy"):
                return [self._canceled(working, f"reduce-only: nothing left to reduce (position {position})", hit[0])]
            cap = qty = min(qty, abs(position))
        if working.terms.by_volume:
            traded = md.qty if type(md) is Trade else working.terms.cfg.bar_volume_share * md.volume  # type: ignore[union-attr]
            qty = min(qty, round_qty(traded, working.terms.cfg.step_size))
            if o.time_in_force == "FOK" and qty < working.remaining:
                return [self._canceled(working, "FOK: not all of it traded on the first market data after it", hit[0])]
        events: list[Event] = [self._fill(working, hit[1], hit[0], qty)] if qty > 0 else []
        if working.remaining > 0 and qty == cap:
            events.append(self._canceled(working, "reduce-only: trimmed to the position it reduced", hit[0]))
        elif working.immediate and working.remaining > 0:
            events.append(self._canceled(working, IOC_MISSED, hit[0]))
        return events

    def _fill(self, working: _Working, price: Decimal, ts: int, qty: Decimal | None = None) -> OrderFilled:
        """Fill `qty` (all that remains by default) at `price` (slipped when taker)."""
        o, terms = working.order, working.terms
        maker = working.limit is not None
        if not maker:
            price = price * terms.taker_factor[o.side]
        if qty is None or qty >= working.remaining:
            qty, working.remaining = working.remaining, ZERO
            self._remove(working)
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
        o = working.order
        if self._working.pop(o.id, None) is None:
            orders = self._protective.get((o.client, o.venue, o.symbol))
            if orders is not None and orders.pop(o.id, None) is not None:
                self._n_protective -= 1


def _first_at_or_after(recent: deque[MarketData], ts: int) -> int:
    """The index of the first kept event that ended at or after `ts` (usually the newest or none)."""
    start = len(recent)
    while start and recent[start - 1].ts_event >= ts:
        start -= 1
    return start


def _opened_at(md: MarketData) -> int:
    return md.ts_event if type(md) is Trade else md.ts_open


def _stops_first(working: _Working) -> int:
    return 0 if working.order.order_type == "stop_market" else 1


def _trigger_price(order: SubmitOrder, md: MarketData) -> Decimal | None:
    """The price (before slippage) a protective order fills at on `md`: its level, or the open
    when the market opened through it; None when `md` does not reach it."""
    level = order.stop_price
    assert level is not None  # _problem refuses protective orders without one
    if type(md) is Trade:
        open_ = high = low = md.price
    else:
        open_, high, low = md.open, md.high, md.low
    # A sell stop (under a long) and a buy take-profit (under a short) trigger on the way down.
    down = (order.side == "sell") == (order.order_type == "stop_market")
    if down:
        return min(level, open_) if low <= level else None
    return max(level, open_) if high >= level else None
