"""The portfolio's logic: fills -> positions, PnL and round trips; funding -> payments on open
perpetual positions; prices -> marks; a due snapshot -> each client's EquitySnapshot and the
ledger state, stored so that a restart reads it plus what came after.

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
from bosun.runtime.actor import Actor, Delivery, Effect, Endpoint, Input, Outbox, event_input
from bosun.runtime.clock import Clock
from proto import subjects as sj
from proto.events import (EquitySnapshot, FundingPaid, FundingRateSettled, OrderAccepted, OrderFilled, OrderRejected,
                          PositionChanged, PriceSnapshot, SubmitOrder, TargetApproved)
from services.portfolio import client_view, ledger
from services.portfolio import execution_quality as eq
from services.portfolio.config import PortfolioConfig
from services.portfolio.positions import ARITHMETIC, ZERO, Position, add, check_fill, subtract
from services.portfolio.roundtrips import RoundTrip, RoundTripTracker
from services.portfolio.snapshot import LedgerState, PositionState

Key = tuple[str, str, str]  # client, venue, symbol
# Per perpetual position, the newest fills' times and the qty before each: enough to tell what was
# held at a funding time from fills handled after it (the event follows it by about a second).
HELD_BEFORE = 256
# Orders (and their targets) whose execution quality the client endpoint reports: the newest.
JOURNAL_ORDERS = 100_000


class StoreFill(msgspec.Struct, Effect, frozen=True, gc=False):
    """Write a new fill, the position it made and the round trip it closed to the store, together.
    (One per fill: a Struct is built in a fifth of a frozen dataclass's time.)"""

    fill: OrderFilled
    position: PositionChanged
    closed: tuple[RoundTrip, ...]


class StoreFunding(msgspec.Struct, Effect, frozen=True):
    """Write a funding payment, and the position's funding so far, to the store."""

    payment: FundingPaid


class StoreSnapshot(msgspec.Struct, Effect, frozen=True):
    """Write the ledger state and each client's equity snapshot, after every fill and funding
    handled so far is stored (the edge carries out effects in order, round by round)."""

    state: LedgerState
    equity: tuple[EquitySnapshot, ...]


class Restored(msgspec.Struct, frozen=True):
    """What a restart reads: the newest ledger snapshot (None: there is none yet), the fills and
    funding payments stored after it, in the order they were handled, and the ids of the newest
    fills stored before it (a redelivered one is recognised, not applied twice)."""

    snapshot: LedgerState | None
    fills: Sequence[OrderFilled] = ()
    funding: Sequence[tuple[Key, int, Decimal]] = ()  # (client, venue, symbol), funding time, amount paid
    recent_fill_ids: Sequence[tuple[str, str]] = ()  # (venue, fill id)


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
            if p.funding:  # only perpetuals: a spot book keeps the digits it always had
                base = subtract(base, p.funding)
            if p.qty:
                base = subtract(base, p.cost) if p.qty > ZERO else add(base, p.cost)
                open_.append(((key[1], key[2]), key, p))
            else:
                base = add(base, ZERO)  # a flat position's unrealized pnl: ZERO, as Position.unrealized says
        self.base, self.open = base, open_


class PortfolioActor(Actor):
    name = "portfolio"

    def __init__(self, clock: Clock, out: Outbox, config: PortfolioConfig, fills: Iterable[OrderFilled] = (),
                 max_seen_fills: int = 100_000, max_round_trips: int = 1_000_000,
                 restored: Restored | None = None, execution_quality: bool = False) -> None:
        super().__init__(clock, out)
        self._capital = dict(config.capital)
        self._max_price_age_ns = int(config.ledger.max_price_age_s * 1e9)
        self._equity = {client: _Equity(capital) for client, capital in config.capital.items()}
        self._positions: dict[Key, Position] = {}
        self._prices = LatestPrices()  # the newest snapshot's price is a market's mark
        self._last_fill_price: dict[Key, Decimal] = {}  # the mark until a snapshot arrives
        self._tracker = RoundTripTracker()
        self._closed: deque[RoundTrip] = deque(maxlen=max_round_trips)
        self._seen = RecentIds(max_seen_fills)  # (venue, fill id): fill ids are unique per venue
        self._funded: dict[tuple[str, str], int] = {}  # (venue, symbol) -> the newest funding time booked
        self._held_before: dict[Key, deque[tuple[int, Decimal]]] = {}  # perpetuals: (fill time, qty before it)
        # With `execution_quality` (the service; a backtest computes it once after the run), the order log
        # seen live (approvals, submits, answers; fills from on_order_filled): each client's execution
        # quality for the endpoint, since the service started (a restart reads no history).
        self._journal = eq.OrderJournal(JOURNAL_ORDERS, JOURNAL_ORDERS) if execution_quality else None
        if restored is not None:
            self._restore(restored)
        self.load(fills)

    def inputs(self) -> Sequence[Input]:
        ledger_inputs = (
            event_input(sj.FILLS, OrderFilled, self.on_order_filled, Delivery.DURABLE),
            event_input(sj.FUNDING_RATES, FundingRateSettled, self.on_funding_rate_settled, Delivery.DURABLE),
            event_input(sj.PRICES, PriceSnapshot, self._prices.on_price_snapshot, Delivery.LATEST),
        )
        if self._journal is None:
            return ledger_inputs
        order_log = ((sj.APPROVED, TargetApproved), (sj.SUBMIT, SubmitOrder), (sj.ACCEPTED, OrderAccepted),
                     (sj.REJECTED, OrderRejected))
        return (*ledger_inputs,
                *(event_input(subject, kind, self._journal.on_event, Delivery.LIVE) for subject, kind in order_log))

    # --- handlers

    def on_order_filled(self, fill: OrderFilled) -> None:
        applied = self._apply(fill)
        if applied is None:
            return
        if self._journal is not None:
            self._journal.on_event(fill)
        position, closed = applied
        mark = self._mark((fill.client, fill.venue, fill.symbol))
        change = PositionChanged(
            id=fill.id, ts_event=fill.ts_event, client=fill.client, venue=fill.venue, symbol=fill.symbol,
            qty=position.qty, avg_price=position.avg_price, realized_pnl=position.net_realized,
            unrealized_pnl=position.unrealized(mark), fees=position.fees, fill_id=fill.id)
        self.out.effect(StoreFill(fill, change, closed))  # in the book of record before anyone hears of it
        self.out.publish(change)

    def on_funding_rate_settled(self, event: FundingRateSettled) -> None:
        """Each position open at the funding time pays qty x mark x rate, once per funding time: a
        funding time at or before the newest one booked for the market is old (a redelivery, a
        replay published again) and changes nothing. The event comes a moment after the funding
        time: a fill handled meanwhile but done after it does not count (`_held_at`)."""
        market = (event.venue, event.symbol)
        if event.ts_event <= self._funded.get(market, -1):
            return
        self._funded[market] = event.ts_event
        for key, position in self._positions.items():
            if key[1] != event.venue or key[2] != event.symbol:
                continue
            qty = self._held_at(key, event.ts_event)
            if not qty:
                continue
            mark = event.mark_price if event.mark_price is not None else self._mark(key)
            amount = position.pay_funding(qty, mark, event.rate)
            book = self._equity.get(key[0])
            if book is not None:
                book.refresh()
            payment = FundingPaid(id=f"{key[0]}.{event.id}", ts_event=event.ts_event, client=key[0], venue=key[1],
                                  symbol=key[2], qty=qty, mark_price=mark, rate=event.rate, amount=amount,
                                  funding=position.funding)
            self.out.effect(StoreFunding(payment))
            self.out.publish(payment)

    def _held_at(self, key: Key, ts: int) -> Decimal:
        """The position's qty at time `ts`: before the oldest fill done after it, else now."""
        held = self._positions[key].qty
        for fill_ts, before in reversed(self._held_before.get(key, ())):
            if fill_ts <= ts:
                break
            held = before
        return held

    def on_snapshot_due(self, now_ns: int) -> None:
        """Each client's EquitySnapshot, published and stored with the ledger state they come from."""
        marked = self.marked(now_ns)
        snapshots = tuple(
            ledger.equity_snapshot(client, now_ns, capital, self.equity(client),
                                   [m for m in marked if m.key[0] == client])
            for client, capital in sorted(self._capital.items()))
        self.out.effect(StoreSnapshot(self.state(), snapshots))
        for snapshot in snapshots:
            self.out.publish(snapshot)

    def load(self, fills: Iterable[OrderFilled]) -> None:
        """Restore state from stored fills (in the order they were handled); publishes nothing."""
        for fill in fills:
            self._apply(fill)

    def state(self) -> LedgerState:
        """Everything a restart needs to carry on exactly, but the ids of recent fills (the store has them)."""
        return LedgerState(
            positions=[PositionState(c, v, s, p.qty, p.cost, p.realized_pnl, p.fees, p.funding,
                                     self._last_fill_price[(c, v, s)])
                       for (c, v, s), p in self._positions.items()],
            running=self._tracker.running(),
            funded=[(venue, symbol, ts) for (venue, symbol), ts in self._funded.items()])

    def _restore(self, restored: Restored) -> None:
        for venue_fill in restored.recent_fill_ids:
            self._seen.add(venue_fill)
        if restored.snapshot is not None:
            for p in restored.snapshot.positions:
                key = (p.client, p.venue, p.symbol)
                position = self._positions[key] = Position(p.qty, ZERO, p.realized_pnl, p.fees, p.funding)
                position.cost = p.cost  # exactly as it was: an average price would round it
                self._last_fill_price[key] = p.last_fill_price
                book = self._equity.get(p.client)
                if book is not None:
                    book.positions[key] = position
            for book in self._equity.values():
                book.refresh()
            self._tracker.restore((tuple(key), state) for key, state in restored.snapshot.running)
            self._funded = {(venue, symbol): ts for venue, symbol, ts in restored.snapshot.funded}
        self.load(restored.fills)
        self.load_funding(restored.funding)  # funding moves no qty or cost: its order among fills is free

    def load_funding(self, payments: Iterable[tuple[Key, int, Decimal]]) -> None:
        """Book stored funding payments ((client, venue, symbol), funding time, amount paid) on
        positions their fills opened; publishes nothing."""
        for key, ts, amount in payments:
            position = self._positions[key]
            position.funding = add(position.funding, amount)
            market = (key[1], key[2])
            self._funded[market] = max(self._funded.get(market, -1), ts)
            book = self._equity.get(key[0])
            if book is not None:
                book.refresh()

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
        if (fill.venue, fill.symbol) in self._funded:  # a perpetual: what it held before, for funding due before it
            self._held_before.setdefault(key, deque(maxlen=HELD_BEFORE)).append((fill.ts_event, position.qty))
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

    def endpoints(self) -> Sequence[Endpoint]:
        return (Endpoint("client", sj.PORTFOLIO_CLIENT, self.answer_client),)

    def answer_client(self, subject: str) -> dict[str, Any]:
        """One client's own book (services.portfolio.client_view); the client is the subject's last token.
        An unknown client is answered with an error that names no other client."""
        client = subject.rsplit(".", 1)[-1]
        if client not in self._equity:
            return {"error": f"the portfolio has no client {client!r}"}
        return client_view.view(client, self._capital[client], self.equity(client),
                                client_view.own(client, self._positions.items()), self._mark,
                                [t for t in self._closed if t.client == client],
                                () if self._journal is None else
                                self._journal.records(lambda r: r.order.client == client))

    def marked(self, now_ns: int) -> list[ledger.Marked]:
        """Every position with its mark and how fresh that is at `now_ns`."""
        prices = self._prices.by_market
        return [ledger.Marked(key, p, *ledger.mark(key, prices, self._last_fill_price[key], now_ns,
                                                   self._max_price_age_ns))
                for key, p in sorted(self._positions.items())]

    def status(self) -> dict[str, Any]:
        """JSON-ready: Decimals as strings."""
        now = self.clock.now_ns()
        marked = self.marked(now)
        positions = [
            {"client": c, "venue": v, "symbol": s, "qty": str(p.qty), "avg_price": str(p.avg_price),
             "realized_pnl": str(p.net_realized), "unrealized_pnl": str(p.unrealized(mark)),
             "fees": str(p.fees), "funding": str(p.funding), "mark": str(mark), "mark_status": status,
             "mark_age_s": age}
            for (c, v, s), p, mark, status, age in marked
        ]
        clients = sorted(self._capital)
        equity = {c: self.equity(c) for c in clients}
        figures = {}
        for c in clients:
            own = [m for m in marked if m.key[0] == c]
            figures[c] = ledger.client_figures(ledger.equity_snapshot(c, now, self._capital[c], equity[c], own), own)
        return {
            "positions": positions,
            "equity": {c: str(e) for c, e in equity.items()},
            "equity_total": str(sum(equity.values(), ZERO)),
            "clients": figures,  # per client over every venue: per symbol, per currency, exposure, unmarked
            "open_round_trips": [
                {"client": t.client, "venue": t.venue, "symbol": t.symbol, "side": t.side,
                 "entry_time_ns": t.entry_time_ns, "qty": str(t.qty), "open_qty": str(t.open_qty),
                 "entry_price": str(t.entry_price), "fees": str(t.fees)}
                for t in self._tracker.open_round_trips()
            ],
            "round_trips_closed": len(self._closed),
        }
