from __future__ import annotations

import pytest

from bosun.model.recent import RecentIds


def test_remembers_up_to_the_limit_and_forgets_the_oldest_first():
    recent = RecentIds(2)
    assert recent.add("a") and recent.add("b")
    assert not recent.add("a")  # a duplicate, and no refresh of its age
    assert recent.add("c")
    assert "a" not in recent and "b" in recent and "c" in recent and len(recent) == 2


def test_the_limit_must_be_positive():
    with pytest.raises(ValueError, match="limit must be >= 1, got 0"):
        RecentIds(0)


def test_forgets_in_insertion_order_through_many_turnovers():
    recent = RecentIds(1_000)
    for i in range(5_500):
        assert recent.add(i)
    assert len(recent) == 1_000 and 4_499 not in recent and all(i in recent for i in range(4_500, 5_500))
    assert not recent.add(5_000) and recent.add(0)  # still known; long forgotten
