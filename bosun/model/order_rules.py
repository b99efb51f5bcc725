"""The order rules risk checks on each target and execution re-checks on each order (its
last-line guard), written once so the two cannot drift: the notional of a quantity, how far a
price is from the market, and a rolling window of approvals per client."""

from __future__ import annotations

from collections import deque
from decimal import Decimal

NS_PER_S = 1_000_000_000
HUNDRED = Decimal(100)
# Reasons execution gives that risk's breakers read: an order sent nowhere, and one on a venue
# that no intent explains (reconciliation cancels it).
DRY_RUN = "dry run: order not sent"
UNEXPLAINED = "reconciliation: no intent explains it"


def notional(qty: Decimal, price: Decimal) -> Decimal:
    """|qty| x price, in quote currency."""
    return abs(qty) * price


def off_market_pct(price: Decimal, market: Decimal) -> Decimal:
    """How far (%) `price` is from the market's newest price `market` (> 0)."""
    return abs(price - market) * HUNDRED / market


class RateWindow:
    """At most `limit` events in any rolling window of `window_s`, by the caller's clock."""

    __slots__ = ("limit", "window_s", "_window_ns", "_times")

    def __init__(self, limit: int, window_s: int) -> None:
        self.limit, self.window_s, self._window_ns = limit, window_s, window_s * NS_PER_S
        self._times: deque[int] = deque(maxlen=limit)  # event times, oldest first: never more than the limit

    def full(self, now_ns: int) -> bool:
        """True when another event now would be one too many."""
        times = self._times
        while times and times[0] <= now_ns - self._window_ns:
            times.popleft()
        return len(times) >= self.limit

    def add(self, now_ns: int) -> None:
        self._times.append(now_ns)

    def __len__(self) -> int:
        return len(self._times)
