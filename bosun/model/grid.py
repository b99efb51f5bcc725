"""Quantities and prices on a market's grid (its step and tick sizes), with explicit
Decimal rounding modes.

- Quantities round toward zero (ROUND_DOWN): an order never trades more than was asked,
  for either sign.
- Limit prices round so that the order never trades at a worse price than asked: a buy
  limit rounds down (ROUND_FLOOR: we never pay more than asked), a sell limit rounds up
  (ROUND_CEILING: we never sell for less than asked).
- Protective levels (stop-loss, take-profit) round to the nearest tick, ties to even."""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal

from proto.events import Side

_ONE = Decimal(1)


def _check_grid(value: Decimal, size: Decimal, what: str) -> None:
    if not size.is_finite() or size <= 0:
        raise ValueError(f"{what} must be a positive number, got {size}")
    if not value.is_finite():
        raise ValueError(f"cannot round {value} to a {what}")


def round_qty(qty: Decimal, step: Decimal) -> Decimal:
    """`qty` toward zero to a multiple of `step` (signed quantities keep their sign; no "-0").
    Decimal `//` truncates toward zero and is exact: `qty / step` rounded at the context
    precision could round up to the next step before being truncated."""
    _check_grid(qty, step, "step size")
    rounded = (qty // step) * step
    return rounded if rounded else abs(rounded)


def round_price(price: Decimal, tick: Decimal, side: Side) -> Decimal:
    """A limit price on the tick grid: buy rounds down, sell rounds up (see the module doc)."""
    _check_grid(price, tick, "tick size")
    if side not in ("buy", "sell"):
        raise ValueError(f"side must be 'buy' or 'sell', got {side!r}")
    mode = ROUND_FLOOR if side == "buy" else ROUND_CEILING
    return (price / tick).to_integral_value(rounding=mode) * tick


def round_to_tick(price: Decimal, tick: Decimal) -> Decimal:
    """`price` to the nearest multiple of `tick`, ties to even."""
    _check_grid(price, tick, "tick size")
    return (price / tick).quantize(_ONE, rounding=ROUND_HALF_EVEN) * tick
