"""The portfolio's logic: fills -> positions, PnL and round trips; prices -> marks.

Idempotent on fill id: a fill seen before changes nothing and publishes nothing. The
store (PostgreSQL, ON CONFLICT on venue + fill id) is the durable truth, so memory keeps
only the `max_seen_fills` most recent fill ids: redeliveries come from the unacked tail
of the durable consumer, far shorter than that. Closed round trips are kept in memory up
to `max_round_trips` (the newest); the store keeps them all."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

import msgspec

from bosun.model.prices import LatestPrices
from bosun.model.recent import RecentIds
from bosun.runtime.actor import Actor, Delivery, Effect, Input, Outbox, event_input
from bosun.runtime.clock import Clock
from proto import subjects as sj
from proto.events import OrderFilled, PositionChanged, PriceSnapshot
from services.portfolio.config import PortfolioConfig
from services.portfolio.positions import ARITHMETIC, ZERO, Position, add, check_fill, subtract
from services.portfolio.roundtrips import RoundTrip, RoundTripTracker

Key = tuple[str, str, str]  # client, venue, symbol


class StoreFill(msgspec.Struct, Effect, frozen=True, gc=False):
    """Write a new fill, the position it made and the round trip it closed to the store, together.
    (One per fill: a Struct is built in a fifth of a frozen dataclass's time.)"""

    fill: OrderFilled
    position: PositionChanged
    closed: tuple[RoundTrip, ...]


class _Equity:
    """One client's equity, split so that marking it is cheap: capital + realized pnl - fees +
    unrealized pnl = `base` + sum of qty x mark over the `open` positions, where `base` holds
    everything but the marks (capital, realized pnl, fees, minus the signed cost basis of each
    open position). Equity is read at every bar and changes only with marks and fills, so the
    base is recomputed on fills, never per bar. Exact (positions.ARITHMETIC): the same value,
    and the same Decimal exponent, as summing capital and each position's pnl terms."""

    __slots__ = ("capital", "positions", "base", "open")

    def __init__(self, capital: Decimal) -> None:
        self.capital = capital
        self.positions: dict[Key, Position] = {}  # every position of the client, open or flat
        self.base = capital
        self.open: list[tuple[tuple[str, str], Key, Position]] = []  # (venue, symbol), key, position

    def refresh(self) -> None:
        """Recompute `base` and `open` after a fill changed one of the positions."""
        base = self.capital
        open_ = []
        for key, p in self.positions.items():
            base = subtract(add(base, p.realized_pnl), p.fees)
            if p.qty:
                base = subtract(base, p.cost) if p.qty > ZERO else add(base, p.cost)
                open_.append(((key[1], key[2]), key, p))
            else:
                base = add(base, ZERO)  # a flat position's unrealized pnl: ZERO, as Position.unrealized says
        self.base, self.open = base, open_


class PortfolioActor(Actor):
    name = "portfolio"

    def __init__(self, clock: Clock, out: Outbox, config: PortfolioConfig, fills: Iterable[OrderFilled] = (),
                 max_seen_fills: int = 100_000, max_round_trips: int = 1_000_000) -> None:
        super().__init__(clock, out)
        self._capital = dict(config.capital)
        self._equity = {client: _Equity(capital) for client, capital in config.capital.items()}
        self._positions: dict[Key, Position] = {}
        self._prices = LatestPrices()  # the newest snapshot's price is a market's mark
        self._last_fill_price: dict[Key, Decimal] = {}  # the mark until a snapshot arrives
        self._tracker = RoundTripTracker()
        self._closed: deque[RoundTrip] = deque(maxlen=max_round_trips)
        self._seen = RecentIds(max_seen_fills)  # (venue, fill id): fill ids are unique per venue
        self.load(fills)

    def inputs(self) -> Sequence[Input]:
        return (
            event_input(sj.FILLS, OrderFilled, self.on_order_filled, Delivery.DURABLE),
            event_input(sj.PRICES, PriceSnapshot, self._prices.on_price_snapshot, Delivery.LATEST),
        )

    # --- handlers

    def on_order_filled(self, fill: OrderFilled) -> None:
        applied = self._apply(fill)
        if applied is None:
            return
        position, closed = applied
        mark = self._mark((fill.client, fill.venue, fill.symbol))
        change = PositionChanged(
            id=fill.id, ts_event=fill.ts_event, client=fill.client, venue=fill.venue, symbol=fill.symbol,
            qty=position.qty, avg_price=position.avg_price, realized_pnl=position.realized_pnl - position.fees,
            unrealized_pnl=position.unrealized(mark), fees=position.fees, fill_id=fill.id)
        self.out.effect(StoreFill(fill, change, closed))  # in the book of record before anyone hears of it
        self.out.publish(change)

    def load(self, fills: Iterable[OrderFilled]) -> None:
        """Restore state from stored fills (in the order they were handled); publishes nothing."""
        for fill in fills:
            self._apply(fill)

    def _apply(self, fill: OrderFilled) -> tuple[Position, tuple[RoundTrip, ...]] | None:
        """Apply a new fill: its position and the round trip it closed, if any; None when it
        was seen before. A bad fill raises before any change."""
        # Checked first: a bad fill is never remembered as seen, so checking a seen one is harmless.
        sign = check_fill(fill.side, fill.qty, fill.price, fill.fee)  # once, for the position and the tracker
        if not self._seen.add((fill.venue, fill.id)):  # fill ids are unique per venue
            return None
        key = (fill.client, fill.venue, fill.symbol)
        position = self._positions.get(key)
        if position is None:
            position = self._positions[key] = Position()
        position.apply_checked(sign, fill.qty, fill.price, fill.fee)
        self._last_fill_price[key] = fill.price
        book = self._equity.get(fill.client)
        if book is not None:  # fills of clients not configured here count in no equity
            book.positions[key] = position
            book.refresh()
        closed = self._tracker.on_checked_fill(fill, sign)
        if closed is None:
            return position, ()
        self._closed.append(closed)
        return position, (closed,)

    def _mark(self, key: Key) -> Decimal:
        """The newest snapshot's price, else (no snapshot yet) the last fill's."""
        snapshot = self._prices.by_market.get((key[1], key[2]))
        return self._last_fill_price[key] if snapshot is None else snapshot.price

    # --- accessors (backtest runner, status)

    def positions(self) -> dict[Key, Position]:
        return dict(self._positions)

    def round_trips(self) -> list[RoundTrip]:
        """Closed round trips, oldest first (the newest `max_round_trips`)."""
        return list(self._closed)

    def unrealized(self, key: Key) -> Decimal:
        return self._positions[key].unrealized(self._mark(key))

    def equity(self, client: str) -> Decimal:
        """Capital from config + realized pnl - fees + unrealized pnl at the newest marks."""
        try:
            book = self._equity[client]
        except KeyError:
            raise KeyError(f"client {client!r} is not in the config (clients: {', '.join(sorted(self._capital))})") \
                from None
        equity = book.base
        prices = self._prices.by_market
        for market, key, position in book.open:
            snapshot = prices.get(market)  # self._mark(key), inline: this runs once per bar
            mark = self._last_fill_price[key] if snapshot is None else snapshot.price
            # equity + qty x mark in one exact operation (fma: one rounding, none at 50 digits)
            equity = position.qty.fma(mark, equity, ARITHMETIC)
        return equity

    def status(self) -> dict[str, Any]:
        """JSON-ready: Decimals as strings."""
        positions = [
            {"client": c, "venue": v, "symbol": s, "qty": str(p.qty), "avg_price": str(p.avg_price),
             "realized_pnl": str(p.realized_pnl - p.fees), "unrealized_pnl": str(p.unrealized(self._mark((c, v, s)))),
             "fees": str(p.fees), "mark": str(self._mark((c, v, s)))}
            for (c, v, s), p in sorted(self._positions.items())
        ]
        clients = sorted(self._capital)
        return {
            "positions": positions,
            "equity": {c: str(self.equity(c)) for c in clients},
            "open_round_trips": [
                {"client": t.client, "venue": t.venue, "symbol": t.symbol, "side": t.side,
                 "entry_time_ns": t.entry_time_ns, "qty": str(t.qty), "open_qty": str(t.open_qty),
                 "entry_price": str(t.entry_price), "fees": str(t.fees)}
                for t in self._tracker.open_round_trips()
            ],
            "round_trips_closed": len(self._closed),
        }
