"""Clocks are injected: actors ask `clock.now_ns()` and never read the wall clock."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now_ns(self) -> int: ...


class LiveClock:
    def now_ns(self) -> int:
        return time.time_ns()


class SimClock:
    """Simulated time, moved forward by whoever replays the data."""

    def __init__(self, start_ns: int = 0) -> None:
        self._now = start_ns

    def now_ns(self) -> int:
        return self._now

    def advance_to(self, ts_ns: int) -> None:
        if ts_ns < self._now:
            raise ValueError(f"simulated time cannot go backwards: {ts_ns} < {self._now}")
        self._now = ts_ns
