"""A simulated venue that fills orders against real market data. Pure: no I/O, no clock.

Fill rules (`decided_at_ns` is when the order was decided: the target's ts_event):
- market, bars, fill "next_open": the first bar with ts_open >= decided_at, at its open;
  fill "close": the first bar with ts_event (close time) >= decided_at, at its close;
- market, trades: the first trade with ts_event >= decided_at, at its price;
- limit: the first bar (ts_open >= decided_at) or trade (ts_event >= decided_at) that
  trades THROUGH the limit (buy: low/price < limit, sell: high/price > limit), at the limit,
  as maker, without slippage. The whole remaining quantity fills (no volume model).
- reason "end_of_data": at once, at the close of the last bar seen for the symbol;
- a `fill_price` given to `submit` (a triggered stop): at once, at that price.

Taker fills pay `slippage_bps` against the order (buy x (1 + bps/10000), sell x (1 - bps/10000));
the result is NOT rounded to the tick: a taker fill that walks the book averages to an
off-grid price too, and `tick_size` is per venue, not per symbol, so rounding could move
a cheap symbol's price by a whole tick. Fee = fee_bps/10000 x qty x fill price (quote
currency), maker and taker alike (VenueConfig has one fee).

Market data and orders may reach us in either order over NATS (separate consumers), so
the newest `max_recent_bars` bars and trades per symbol are kept: an order arriving after
the bar it should fill on still fills on that bar. An order older than everything kept
(its fill data may have been dropped) is rejected rather than filled on a guess. When a
symbol gets both bars and trades, a resting order fills on whichever qualifying event
arrives first; run shadow fills on one kind of market data per symbol for exact repeats."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from decimal import Decimal

from bosun.model.grid import round_price
from proto.events import (Bar, Event, OrderAccepted, OrderCanceled, OrderFilled, OrderRejected, OrderSubmitted,
                          Trade)
from services.execution.config import VenueConfig
from services.execution.orders import ZERO, rejection

END_OF_DATA = "end_of_data"
BPS = Decimal(10_000)

MarketData = Bar | Trade


@dataclass(slots=True)
class _Working:
    order: OrderSubmitted
    decided_at_ns: int
    remaining: Decimal
    limit: Decimal | None  # the limit on the tick grid
    fills: int = 0


class ShadowVenue:
    def __init__(self, venue: str, cfg: VenueConfig, max_recent_bars: int = 64) -> None:
        if max_recent_bars < 1:
            raise ValueError(f"max_recent_bars must be >= 1, got {max_recent_bars}")
        self.venue = venue
        self.cfg = cfg
        # Worked out once rather than on every fill: `price * (1 ± slippage_bps / BPS)` and
        # `fee_bps / BPS * qty * price` (left to right) multiply by these very values. Both are
        # exact for any setting of under 28 digits (/ 10,000 only moves the decimal point).
        slip = cfg.slippage_bps / BPS
        self._taker_factor = {"buy": 1 + slip, "sell": 1 - slip}
        self._fee_rate = cfg.fee_bps / BPS
        self._at_close = cfg.fill == "close"  # market orders on bars fill at the close, else the open
        self._max_recent = max_recent_bars
        # Kind (Bar, Trade) -> symbol -> its newest `max_recent_bars` events, oldest first, and in
        # front of them the newest one that fell out (once one has). The deque drops the oldest by
        # itself, so keeping a bar is one append; the one in front tells an order too old to fill.
        self._recent: dict[type, dict[str, deque[MarketData]]] = {Bar: {}, Trade: {}}
        self._working: dict[str, _Working] = {}  # client order id -> order, in submit order

    # --- orders

    def submit(self, order: OrderSubmitted, decided_at_ns: int, fill_price: Decimal | None = None) -> list[Event]:
        """Accept `order` and fill what can be filled now; `fill_price` fills it at once there."""
        if order.venue != self.venue:
            raise ValueError(f"order {order.id} is for venue {order.venue!r}, this is {self.venue!r}")
        if order.id in self._working:
            return []  # already working: a repeated submit changes nothing
        working = self._new_working(order, decided_at_ns)
        problem = self._problem(working, fill_price)
        if problem:
            return [rejection(order.id, order, problem)]
        accepted = OrderAccepted(id=order.id, ts_event=decided_at_ns, client_order_id=order.id,
                                 venue_order_id=f"shadow-{order.id}", client=order.client, venue=order.venue,
                                 symbol=order.symbol)
        if fill_price is not None:
            return [accepted, self._fill(working, fill_price, decided_at_ns)]
        if order.reason == END_OF_DATA:
            last = self._recent[Bar][order.symbol][-1]
            return [accepted, self._fill(working, last.close, last.ts_event)]
        return self._take(working, accepted)

    def cancel(self, client_order_id: str, reason: str, ts_ns: int | None = None) -> list[Event]:
        """Cancel a working order; nothing for an order that is not working (filled, unknown).
        `ts_ns` defaults to the newest market time seen."""
        working = self._working.pop(client_order_id, None)
        if working is None:
            return []
        o = working.order
        ts = self._market_ns() if ts_ns is None else ts_ns
        return [OrderCanceled(id=o.id, ts_event=max(ts, working.decided_at_ns), client_order_id=o.id,
                              client=o.client, venue=o.venue, symbol=o.symbol, reason=reason)]

    def replay(self, event: Event) -> None:
        """Rebuild working orders from the order log after a restart; emits nothing."""
        match event:
            case OrderSubmitted(venue=self.venue) if event.id not in self._working:
                self._working[event.id] = self._new_working(event, event.ts_event)
            case OrderFilled(venue=self.venue, client_order_id=coid) if coid in self._working:
                working = self._working[coid]
                working.fills += 1
                working.remaining -= event.qty
                if working.remaining <= 0:
                    del self._working[coid]
            case OrderCanceled(venue=self.venue) | OrderRejected(venue=self.venue):
                self._working.pop(event.client_order_id, None)

    def working_orders(self) -> list[str]:
        return list(self._working)

    def _market_ns(self) -> int:
        """The newest market time seen, the venue's own notion of now: no kept event is newer."""
        return max((recent[-1].ts_event for by_symbol in self._recent.values() for recent in by_symbol.values()),
                   default=0)

    # --- market data

    def on_market(self, md: MarketData) -> list[Event]:
        """A bar or a trade of any venue: kept for orders that arrive late, and checked against
        the working orders of this venue; returns the fills."""
        if md.venue != self.venue:
            return []
        by_symbol = self._recent[type(md)]
        recent = by_symbol.get(md.symbol)
        if recent is None:
            recent = by_symbol[md.symbol] = deque(maxlen=self._max_recent + 1)
        elif md.ts_event <= recent[-1].ts_event and (md.ts_event < recent[-1].ts_event
                                                     or any(m.id == md.id for m in recent)):
            return []  # a repeated or older event: fills must not move with delivery order
        recent.append(md)
        if not self._working:
            return []  # nothing to fill: the usual case, most bars
        fills: list[Event] = []
        for working in list(self._working.values()):  # a copy: a fill takes the order out
            if working.order.symbol == md.symbol:
                hit = self._fill_at(working, md)
                if hit is not None:
                    fills.append(self._fill(working, hit[1], hit[0]))
        return fills

    on_bar = on_trade = on_market  # one handler, not a wrapper each: it runs on every bar

    # --- rules

    def _new_working(self, order: OrderSubmitted, decided_at_ns: int) -> _Working:
        if order.order_type != "limit" or order.limit_price is None or order.limit_price <= 0:
            limit = None
        else:
            limit = round_price(order.limit_price, self.cfg.tick_size, order.side)
        return _Working(order, decided_at_ns, order.qty, limit)

    def _problem(self, working: _Working, fill_price: Decimal | None) -> str | None:
        """Why the order cannot be taken, or None (whether its fill data is still kept: see `_take`)."""
        o = working.order
        if o.qty <= 0:
            return f"qty must be > 0, got {o.qty}"
        if o.order_type == "limit" and (working.limit is None or working.limit <= 0):
            return f"limit order needs a limit price > 0 on tick {self.cfg.tick_size}, got {o.limit_price}"
        if fill_price is not None:
            return None if fill_price > 0 else f"fill price must be > 0, got {fill_price}"
        if o.reason == END_OF_DATA:
            return None if o.symbol in self._recent[Bar] else f"end_of_data: no bar seen for {o.symbol} to close at"
        return None

    def _fill_ts(self, working: _Working, md: MarketData) -> int:
        """The time at which `md` would fill the order: compared with the decision time."""
        # type(), not isinstance: a miss on a msgspec Struct class costs an __instancecheck__ call.
        if type(md) is Trade:
            return md.ts_event
        market_at_close = self._at_close and working.order.order_type == "market"
        return md.ts_event if market_at_close else md.ts_open

    def _fill_at(self, working: _Working, md: MarketData) -> tuple[int, Decimal] | None:
        """(time, price before slippage) at which `md` fills the order; None when it does not fill it."""
        ts = self._fill_ts(working, md)
        if ts < working.decided_at_ns:
            return None
        limit, buy = working.limit, working.order.side == "buy"
        if type(md) is Trade:
            if limit is None:
                return ts, md.price
            return (ts, limit) if (md.price < limit if buy else md.price > limit) else None
        if limit is None:
            return ts, md.close if self._at_close else md.open
        return (ts, limit) if (md.low < limit if buy else md.high > limit) else None

    def _take(self, working: _Working, accepted: OrderAccepted) -> list[Event]:
        """A new order against the kept events: filled on the earliest that qualifies (the order
        arrived after its fill data), else working; rejected when the event in front of the kept
        ones, which fell out of them, could have filled it (what fell out before is not known)."""
        best: tuple[int, Decimal] | None = None
        o, decided = working.order, working.decided_at_ns
        for kind, by_symbol in self._recent.items():
            recent = by_symbol.get(o.symbol)
            if recent is None:
                continue
            # An event fills at or before its ts_event (a bar's open or close), and kept events are in
            # ts_event order: those that ended before the decision cannot fill, so start after them.
            # Usually that leaves only the newest one or none, instead of all max_recent_bars, and
            # the event in front is only looked at when all of them ended at/after the decision.
            start = len(recent)
            while start and recent[start - 1].ts_event >= decided:
                start -= 1
            if start == 0 and len(recent) > self._max_recent and self._fill_ts(working, recent[0]) >= decided:
                return [rejection(o.id, o, f"decided at {decided} ns, before the {self._max_recent} most recent "
                                           f"{kind.__name__.lower()}s kept for {o.symbol}: cannot tell where it "
                                           f"would have filled")]
            for i in range(start, len(recent)):  # by index: islice would walk the deque from its start
                hit = self._fill_at(working, recent[i])
                if hit is not None:
                    if best is None or hit[0] < best[0]:
                        best = hit
                    break
        self._working[o.id] = working
        return [accepted] if best is None else [accepted, self._fill(working, best[1], best[0])]

    def _fill(self, working: _Working, price: Decimal, ts: int) -> OrderFilled:
        """Fill the whole remaining quantity at `price` (slipped when taker)."""
        o = working.order
        maker = working.limit is not None
        if not maker:
            price = price * self._taker_factor[o.side]
        qty = working.remaining
        working.fills += 1
        working.remaining = ZERO
        self._working.pop(o.id, None)
        return OrderFilled(id=f"{o.id}.{working.fills}", ts_event=ts, client_order_id=o.id, client=o.client,
                           venue=o.venue, symbol=o.symbol, side=o.side, qty=qty, price=price,
                           fee=self._fee_rate * qty * price, liquidity="maker" if maker else "taker",
                           reason=o.reason)
