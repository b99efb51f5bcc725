"""How fast one exchange account may be sent order requests (places and cancels, retries
included): pure arithmetic on a monotonic clock, awaited by the edge before each request.

- The order budget: at most `budget` requests in any `window_s` (Binance spot allows 50 orders
  per 10 s; a venue's config may set less).
- The exchange's own word: after a 429 or 418 with Retry-After, nothing before that time.
- The minimum replace interval: an order on a market waits until `min_replace_interval_s`
  after the last cancel there came back, so cancel-and-replace cannot thrash."""

from __future__ import annotations

from collections import deque


class Pacing:
    def __init__(self, budget: int, window_s: float, min_replace_interval_s: float) -> None:
        self.window_s, self.min_replace_interval_s = window_s, min_replace_interval_s
        self._sent: deque[float] = deque(maxlen=budget)  # the newest `budget` requests' times
        self._resume_at = 0.0  # not before this: the exchange's Retry-After
        self._canceled_at: dict[str, float] = {}  # symbol -> when its last cancel came back; one per market traded

    def wait_s(self, now: float, symbol: str, placing: bool) -> float:
        """How long until a request may go: 0 when it may go now."""
        due = self._resume_at
        if len(self._sent) == self._sent.maxlen:  # the budget is spent: until the oldest leaves the window
            due = max(due, self._sent[0] + self.window_s)
        if placing and symbol in self._canceled_at:
            due = max(due, self._canceled_at[symbol] + self.min_replace_interval_s)
        return max(0.0, due - now)

    def sent(self, now: float) -> None:
        self._sent.append(now)

    def canceled(self, now: float, symbol: str) -> None:
        """A cancel on `symbol` came back (done, or refused)."""
        self._canceled_at[symbol] = now

    def held(self, now: float) -> bool:
        """Whether the exchange's Retry-After still holds every request."""
        return now < self._resume_at

    def retry_after(self, now: float, seconds: float) -> None:
        self._resume_at = max(self._resume_at, now + seconds)
