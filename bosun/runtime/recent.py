"""De-duplication in bounded memory: redeliveries are recent, so remembering the newest
ids is enough, and the durable stores stay the truth for anything older."""

from __future__ import annotations

from collections.abc import Hashable


class RecentIds:
    """A set that forgets its oldest entries beyond `limit`."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        self._limit = limit
        self._ids: dict[Hashable, None] = {}  # insertion ordered: the first is the oldest

    def add(self, item: Hashable) -> bool:
        """Remember `item`; False when it was already known."""
        if item in self._ids:
            return False
        self._ids[item] = None
        if len(self._ids) > self._limit:
            del self._ids[next(iter(self._ids))]
        return True

    def __contains__(self, item: Hashable) -> bool:
        return item in self._ids

    def __len__(self) -> int:
        return len(self._ids)
