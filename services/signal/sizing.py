"""Per-client sizing of a direction into a signed target quantity, and the stop-loss /
take-profit arithmetic. Rounding is explicit: quantities toward zero to the venue's step
size (never more than asked), protective prices to the nearest tick (ROUND_HALF_EVEN)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from decimal import Decimal

from bosun.model.grid import round_qty, round_to_tick
from services.signal.config import LevelsConfig, SizingConfig

ZERO = Decimal(0)


def target_qty(direction: int, sizing: SizingConfig, *, equity: Callable[[], Decimal], price: Decimal,
               step_size: Decimal) -> Decimal:
    """The signed base quantity for `direction` (+1/-1/0).

    fixed: direction x sizing.qty (taken as configured).
    equity_fraction: direction x round_qty(fraction x equity() / price); no equity
    (zero or negative) sizes to 0 rather than flipping the side. `equity` is called only
    here: marking every position costs more than the rest of sizing."""
    if direction not in (-1, 0, 1):
        raise ValueError(f"direction must be -1, 0 or +1, got {direction!r}")
    if direction == 0:
        return ZERO
    if sizing.kind == "fixed":
        return direction * sizing.qty
    if price <= 0:
        raise ValueError(f"cannot size on a price of {price}: it must be > 0")
    marked = equity()
    if marked <= 0:
        return ZERO
    return direction * round_qty(sizing.fraction * marked / price, step_size)


def stdev_of_returns(closes: Sequence[Decimal]) -> Decimal | None:
    """Sample standard deviation of the simple returns c[i]/c[i-1] - 1 over `closes`;
    None when there are fewer than two returns (three closes).

    A statistic, not a price: computed in binary floats (deterministic, ~15x faster than
    Decimal, and it runs on every signal), returned as the Decimal of its shortest repr."""
    if len(closes) < 3:
        return None
    prices = [float(c) for c in closes]
    returns = [prices[i] / prices[i - 1] - 1.0 for i in range(1, len(prices))]
    mean = math.fsum(returns) / len(returns)
    variance = math.fsum((r - mean) * (r - mean) for r in returns) / (len(returns) - 1)
    return Decimal(repr(math.sqrt(variance)))


def price_distance(k: Decimal | None, sigma: Decimal | None, price: Decimal) -> Decimal | None:
    """k standard deviations of returns, in price units (k x sigma x price); None when
    either is missing."""
    if k is None or sigma is None:
        return None
    return k * sigma * price


def level_distance(sd: Decimal | None, pct: Decimal | None, sigma: Decimal | None, price: Decimal) -> Decimal | None:
    """A stop-loss or take-profit distance in price units: `sd` standard deviations of returns
    (none before `sigma` is known), or `pct` percent of the price; None when neither is set."""
    if pct is not None:
        return pct / 100 * price
    return price_distance(sd, sigma, price)


def protective_prices(direction: int, price: Decimal, levels: LevelsConfig, sigma: Decimal | None,
                      tick: Decimal) -> tuple[Decimal | None, Decimal | None]:
    """The stop-loss and take-profit prices of `levels` for a position taken at `price`; (None, None)
    at once when no level is set (most setups: no arithmetic per signal)."""
    stop_sd, stop_pct, take_sd, take_pct = levels.stop_loss_sd, levels.stop_loss_pct, levels.take_profit_sd, \
        levels.take_profit_pct
    if stop_sd is None and stop_pct is None and take_sd is None and take_pct is None:
        return None, None
    return (stop_loss_price(direction, price, level_distance(stop_sd, stop_pct, sigma, price), tick),
            take_profit_price(direction, price, level_distance(take_sd, take_pct, sigma, price), tick))


def stop_loss_price(direction: int, price: Decimal, distance: Decimal | None, tick: Decimal) -> Decimal | None:
    """Below the price for a long, above for a short, rounded to the tick; None when flat,
    without a distance, or when a long's stop would fall to zero or below."""
    return _protective(price, -direction, distance, tick)


def take_profit_price(direction: int, price: Decimal, distance: Decimal | None, tick: Decimal) -> Decimal | None:
    """Above the price for a long, below for a short, rounded to the tick; None when flat,
    without a distance, or when a short's take-profit would fall to zero or below."""
    return _protective(price, direction, distance, tick)


def _protective(price: Decimal, sign: int, distance: Decimal | None, tick: Decimal) -> Decimal | None:
    if distance is None or sign == 0:
        return None
    level = round_to_tick(price + sign * distance, tick)
    return level if level > 0 else None
