"""Round-trip trades: from flat to flat (or to a flip), one per client, venue and symbol.

Rules (the backtest issue's spec):
- A flip from +q to -q is ONE fill of 2q: it closes one round trip and opens the next,
  and its fee is split between the two by quantity.
- A round trip's fees are its share of the entry fees plus its exit fees; its pnl is
  gross (exit - entry) x qty (x -1 for a short) minus those fees, and
  return_pct = pnl / (entry_price x qty) x 100.
- exit_reason is the reason of the fill that closed it.
- Partial closes and adds: the round trip stays open until the position is flat again.
  Its `qty` is the total quantity entered (equal to the total exited, and to the maximum
  size unless it was added to after a partial close); entry_price and exit_price are the
  qty-weighted averages of all entry and all exit fills, so gross pnl is exactly
  exit notional - entry notional (the reverse for a short).
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Literal

import msgspec

from proto.events import OrderFilled
from services.portfolio.positions import ZERO, add, check_fill, divide, multiply, share, subtract

HUNDRED = Decimal(100)
Direction = Literal["long", "short"]
Key = tuple[str, str, str]  # client, venue, symbol


class RoundTrip(msgspec.Struct, frozen=True, gc=False):
    """gc=False: strings and numbers only, never part of a reference cycle; untracked by the
    cycle collector, it is cheaper to create and to keep (a backtest keeps every one)."""

    entry_time_ns: int
    exit_time_ns: int
    symbol: str
    venue: str
    client: str
    side: Direction
    qty: Decimal  # total entered
    entry_price: Decimal  # qty-weighted average of the entry fills
    exit_price: Decimal  # qty-weighted average of the exit fills
    fees: Decimal
    pnl: Decimal  # net of fees
    return_pct: Decimal
    duration_s: float
    exit_reason: str
    entry_fill_id: str = ""  # the fill that opened it: one fill opens at most one round trip
    exit_fill_id: str = ""


def in_exit_order(trips: Iterable[RoundTrip]) -> list[RoundTrip]:
    """The order trades.csv lists round trips in, for a backtest and a live record alike."""
    return sorted(trips, key=lambda t: (t.exit_time_ns, t.symbol))


class OpenRoundTrip(msgspec.Struct, frozen=True, kw_only=True):
    """A round trip still running (for status)."""

    entry_time_ns: int
    symbol: str
    venue: str
    client: str
    side: Direction
    entry_fill_id: str
    qty: Decimal  # entered so far
    open_qty: Decimal  # entered and not yet exited
    entry_price: Decimal
    exit_qty: Decimal
    fees: Decimal  # paid so far


class _Running:
    __slots__ = ("sign", "side", "entry_time_ns", "entry_fill_id", "entry_qty", "entry_notional",
                 "exit_qty", "exit_notional", "fees")

    def __init__(self, sign: int, entry_time_ns: int, entry_fill_id: str) -> None:
        self.sign = sign
        self.side: Direction = "long" if sign > 0 else "short"
        self.entry_time_ns = entry_time_ns
        self.entry_fill_id = entry_fill_id
        self.entry_qty = self.entry_notional = self.exit_qty = self.exit_notional = self.fees = ZERO

    @property
    def open_qty(self) -> Decimal:
        return subtract(self.entry_qty, self.exit_qty)

    def enter(self, qty: Decimal, price: Decimal, fee: Decimal) -> None:
        self.entry_qty = add(self.entry_qty, qty)
        self.entry_notional = add(self.entry_notional, multiply(qty, price))
        self.fees = add(self.fees, fee)

    def close(self, key: Key, fill: OrderFilled) -> RoundTrip:
        client, venue, symbol = key
        gross = subtract(self.exit_notional, self.entry_notional)
        if self.sign < 0:
            gross = gross.copy_negate()  # exactly gross x -1, without a context call
        pnl = subtract(gross, self.fees)
        # Positional, in field order (a test pins it): a call with 16 keywords takes a slow path (~5x the time).
        return RoundTrip(
            self.entry_time_ns, fill.ts_event, symbol, venue, client, self.side, self.entry_qty,
            divide(self.entry_notional, self.entry_qty),  # entry_price
            divide(self.exit_notional, self.exit_qty),  # exit_price
            self.fees, pnl,
            divide(multiply(pnl, HUNDRED), self.entry_notional),  # return_pct
            (fill.ts_event - self.entry_time_ns) / 1e9,  # duration_s
            fill.reason, self.entry_fill_id, fill.id)


class RoundTripTracker:
    """Feeds on fills; knows the running round trip of each client/venue/symbol."""

    def __init__(self) -> None:
        self._running: dict[Key, _Running] = {}

    def on_fill(self, fill: OrderFilled) -> list[RoundTrip]:
        """The round trips this fill closed (none, or one; a flip also opens the next)."""
        closed = self.on_checked_fill(fill, check_fill(fill.side, fill.qty, fill.price, fill.fee))
        return [] if closed is None else [closed]

    def on_checked_fill(self, fill: OrderFilled, sign: int) -> RoundTrip | None:
        """`on_fill` for a fill that check_fill accepted, `sign` being what it returned: the
        round trip it closed, if any."""
        key = (fill.client, fill.venue, fill.symbol)
        running = self._running.get(key)
        if running is None or running.sign == sign:  # opening or adding
            if running is None:
                running = self._running[key] = _Running(sign, fill.ts_event, fill.id)
            running.enter(fill.qty, fill.price, fill.fee)
            return None
        qty, fee = fill.qty, fill.fee
        open_qty = running.open_qty
        exiting = open_qty if open_qty < qty else qty
        exit_fee = share(fee, exiting, qty)
        running.exit_qty = add(running.exit_qty, exiting)
        running.exit_notional = add(running.exit_notional, multiply(exiting, fill.price))
        running.fees = add(running.fees, exit_fee)
        if exiting != open_qty:  # a partial close (exact sums: something is still open)
            return None
        closed = running.close(key, fill)
        if exiting == qty:
            del self._running[key]
        else:  # a flip: the rest opens the next round trip with the fee's other share (exact: the two add up)
            running = self._running[key] = _Running(sign, fill.ts_event, fill.id)
            running.enter(subtract(qty, exiting), fill.price, subtract(fee, exit_fee))
        return closed

    def open_round_trips(self) -> list[OpenRoundTrip]:
        return [
            OpenRoundTrip(entry_time_ns=r.entry_time_ns, symbol=symbol, venue=venue, client=client, side=r.side,
                          entry_fill_id=r.entry_fill_id, qty=r.entry_qty, open_qty=r.open_qty,
                          entry_price=divide(r.entry_notional, r.entry_qty),
                          exit_qty=r.exit_qty, fees=r.fees)
            for (client, venue, symbol), r in self._running.items()
        ]

    def running(self) -> list[tuple[Key, RunningState]]:
        """The running round trips, exactly (for a ledger snapshot)."""
        return [(key, RunningState(r.sign, r.entry_time_ns, r.entry_fill_id, r.entry_qty, r.entry_notional,
                                   r.exit_qty, r.exit_notional, r.fees))
                for key, r in self._running.items()]

    def restore(self, running: Iterable[tuple[Key, RunningState]]) -> None:
        """Start from `running()` as a snapshot took it."""
        for key, state in running:
            r = self._running[key] = _Running(state.sign, state.entry_time_ns, state.entry_fill_id)
            r.entry_qty, r.entry_notional = state.entry_qty, state.entry_notional
            r.exit_qty, r.exit_notional, r.fees = state.exit_qty, state.exit_notional, state.fees


class RunningState(msgspec.Struct, frozen=True, array_like=True):
    """A running round trip's sums, as stored in a ledger snapshot."""

    sign: int
    entry_time_ns: int
    entry_fill_id: str
    entry_qty: Decimal
    entry_notional: Decimal
    exit_qty: Decimal
    exit_notional: Decimal
    fees: Decimal
