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

from decimal import Decimal
from typing import Literal

import msgspec

from proto.events import OrderFilled
from services.portfolio.positions import ZERO, add, check_fill, divide, multiply, share, subtract

HUNDRED = Decimal(100)
Direction = Literal["long", "short"]
Key = tuple[str, str, str]  # client, venue, symbol


class RoundTrip(msgspec.Struct, frozen=True):
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
    __slots__ = ("sign", "entry_time_ns", "entry_fill_id", "entry_qty", "entry_notional",
                 "exit_qty", "exit_notional", "fees")

    def __init__(self, sign: int, entry_time_ns: int, entry_fill_id: str) -> None:
        self.sign = sign
        self.entry_time_ns = entry_time_ns
        self.entry_fill_id = entry_fill_id
        self.entry_qty = self.entry_notional = self.exit_qty = self.exit_notional = self.fees = ZERO

    @property
    def side(self) -> Direction:
        return "long" if self.sign > 0 else "short"

    @property
    def open_qty(self) -> Decimal:
        return subtract(self.entry_qty, self.exit_qty)

    def close(self, key: Key, fill: OrderFilled) -> RoundTrip:
        client, venue, symbol = key
        gross = multiply(subtract(self.exit_notional, self.entry_notional), self.sign)
        pnl = subtract(gross, self.fees)
        return RoundTrip(
            entry_time_ns=self.entry_time_ns, exit_time_ns=fill.ts_event, symbol=symbol, venue=venue,
            client=client, side=self.side, qty=self.entry_qty,
            entry_price=divide(self.entry_notional, self.entry_qty),
            exit_price=divide(self.exit_notional, self.exit_qty),
            fees=self.fees, pnl=pnl, return_pct=divide(multiply(pnl, HUNDRED), self.entry_notional),
            duration_s=(fill.ts_event - self.entry_time_ns) / 1e9, exit_reason=fill.reason,
            entry_fill_id=self.entry_fill_id, exit_fill_id=fill.id)


class RoundTripTracker:
    """Feeds on fills; knows the running round trip of each client/venue/symbol."""

    def __init__(self) -> None:
        self._running: dict[Key, _Running] = {}

    def on_fill(self, fill: OrderFilled) -> list[RoundTrip]:
        """The round trips this fill closed (none, or one; a flip also opens the next)."""
        sign = check_fill(fill.side, fill.qty, fill.price, fill.fee)
        key = (fill.client, fill.venue, fill.symbol)
        closed: list[RoundTrip] = []
        entering, fee_left = fill.qty, fill.fee
        running = self._running.get(key)
        if running is not None and running.sign != sign:
            exiting = min(fill.qty, running.open_qty)
            exit_fee = share(fill.fee, exiting, fill.qty)
            running.exit_qty = add(running.exit_qty, exiting)
            running.exit_notional = add(running.exit_notional, multiply(exiting, fill.price))
            running.fees = add(running.fees, exit_fee)
            entering = subtract(entering, exiting)
            fee_left = subtract(fee_left, exit_fee)  # the flip's other share: exact, the two add up to the fee
            if not running.open_qty:
                closed.append(running.close(key, fill))
                del self._running[key]
                running = None
        if entering:
            if running is None:
                running = self._running[key] = _Running(sign, fill.ts_event, fill.id)
            running.entry_qty = add(running.entry_qty, entering)
            running.entry_notional = add(running.entry_notional, multiply(entering, fill.price))
            running.fees = add(running.fees, fee_left)
        return closed

    def open_round_trips(self) -> list[OpenRoundTrip]:
        return [
            OpenRoundTrip(entry_time_ns=r.entry_time_ns, symbol=symbol, venue=venue, client=client, side=r.side,
                          entry_fill_id=r.entry_fill_id, qty=r.entry_qty, open_qty=r.open_qty,
                          entry_price=divide(r.entry_notional, r.entry_qty),
                          exit_qty=r.exit_qty, fees=r.fees)
            for (client, venue, symbol), r in self._running.items()
        ]
