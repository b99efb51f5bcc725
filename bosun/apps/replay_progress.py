"""The progress of a replay in `bosun up`: events stored in MARKET out of the replay files'
total, the speed over the last seconds and the time left. Pure (the samples are handed in), so
what a person sees is tested without a terminal or a clock."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from pathlib import Path

from rich.console import Group
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from proto.events import Bar

SPEED_WINDOW_S = 10.0  # speed is what was stored in about the last this many seconds
MAX_SAMPLES = 64  # one a second is taken: a bound, not a limit reached in practice


def count_events(paths: Sequence[str | Path], venue: str) -> tuple[int, str]:
    """How many events the replay files hold, and what to call them ("bars" when they all are).
    Reads the files as ingest does (about 0.25 s per 50,000 bars): run it off the event loop."""
    from services.ingest.files import read_market_file  # the composition root may read what ingest reads

    total, all_bars = 0, True
    for path in paths:
        for event in read_market_file(path, venue=venue):
            total += 1
            all_bars = all_bars and type(event) is Bar
    return total, "bars" if all_bars else "events"


class ReplayProgress:
    def __init__(self) -> None:
        self.total: int | None = None  # unknown until the files are counted
        self.unit = "events"
        self.done = 0
        self._samples: deque[tuple[float, int]] = deque(maxlen=MAX_SAMPLES)  # (seconds, done)

    def counted(self, total: int, unit: str) -> None:
        self.total, self.unit = total, unit

    def update(self, now_s: float, done: int) -> None:
        """`done` events stored at `now_s` (monotonic seconds)."""
        self.done = min(done, self.total) if self.total is not None else done
        self._samples.append((now_s, self.done))
        while len(self._samples) > 2 and now_s - self._samples[1][0] >= SPEED_WINDOW_S:
            self._samples.popleft()

    @property
    def speed(self) -> float | None:
        """Events per second over the window; None before two samples."""
        if len(self._samples) < 2:
            return None
        (t0, d0), (t1, d1) = self._samples[0], self._samples[-1]
        return (d1 - d0) / (t1 - t0) if t1 > t0 else None

    @property
    def left_s(self) -> float | None:
        speed = self.speed
        if self.total is None or speed is None:
            return None
        if self.done >= self.total:
            return 0.0
        return (self.total - self.done) / speed if speed > 0 else None

    def line(self) -> str:
        """`replay 12,000/50,000 bars (24.0%), 3,012 bars/s, 0:12 left`, or `... (100.0%), done`."""
        if self.total is None:
            return f"replay {self.done:,} {self.unit} (counting the files)"
        share = 100.0 * self.done / self.total if self.total else 100.0
        if self.done >= self.total:  # a speed now would only tell how long ago it finished
            return f"replay {self.done:,}/{self.total:,} {self.unit} ({share:.1f}%), done"
        speed = self.speed
        left = self.left_s
        rate = f"{speed:,.0f} {self.unit}/s" if speed is not None else f"-- {self.unit}/s"
        if left is None:
            when = "stalled" if speed == 0 else "-- left"
        else:
            when = f"{_clock(left)} left"
        return f"replay {self.done:,}/{self.total:,} {self.unit} ({share:.1f}%), {rate}, {when}"

    def view(self, status_line: str, width: int = 30) -> Group:
        """The bar with its figures, the compact status beneath."""
        row = Table.grid(padding=(0, 1))
        row.add_row(ProgressBar(total=float(self.total or 0) or None, completed=float(self.done), width=width),
                    Text(self.line()))
        return Group(row, Text(status_line))


def _clock(seconds: float) -> str:
    s = int(seconds + 0.5)
    h, rest = divmod(s, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"
