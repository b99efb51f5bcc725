"""De-duplication in bounded memory: redeliveries are recent, so remembering the newest
ids is enough, and the durable stores stay the truth for anything older."""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterable, Iterator


class RecentIds:
    """A set that forgets its oldest entries beyond `limit`."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        self._limit = limit
        # A set and its insertion order. (A dict alone keeps the order too, but deleting its
        # first key over and over leaves dummies that every later `next(iter(...))` walks
        # past: once full, each add would cost time proportional to the limit.)
        self._ids: set[Hashable] = set()
        self._order: deque[Hashable] = deque()  # oldest first

    @classmethod
    def of(cls, items: Iterable[Hashable], limit: int) -> RecentIds:
        """Remembering `items` (distinct, oldest first, as `oldest_first` gave them): at once, not
        one `add` at a time (a snapshot holds 100,000 of them)."""
        recent = cls(limit)
        recent._order = deque(items, maxlen=None)
        while len(recent._order) > limit:
            recent._order.popleft()
        recent._ids = set(recent._order)
        return recent

    def add(self, item: Hashable) -> bool:
        """Remember `item`; False when it was already known."""
        if item in self._ids:
            return False
        self._ids.add(item)
        self._order.append(item)
        if len(self._order) > self._limit:
            self._ids.remove(self._order.popleft())
        return True

    def oldest_first(self) -> Iterator[Hashable]:
        """What is remembered, in the order it came (what a snapshot keeps)."""
        return iter(self._order)

    @property
    def limit(self) -> int:
        return self._limit

    def __contains__(self, item: Hashable) -> bool:
        return item in self._ids

    def __len__(self) -> int:
        return len(self._ids)
