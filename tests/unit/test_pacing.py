"""The live venue's pace of order requests: the budget, Retry-After and the replace interval."""

from __future__ import annotations

from services.execution.venues.pacing import Pacing


def test_the_budget_holds_the_next_request_until_the_oldest_leaves_the_window() -> None:
    pacing = Pacing(budget=2, window_s=10.0, min_replace_interval_s=0.0)
    assert pacing.wait_s(100.0, "BTCUSDT", placing=True) == 0
    pacing.sent(100.0)
    pacing.sent(101.0)
    assert pacing.wait_s(102.0, "BTCUSDT", placing=True) == 8.0
    assert pacing.wait_s(110.0, "BTCUSDT", placing=True) == 0


def test_retry_after_holds_every_request_and_never_shortens() -> None:
    pacing = Pacing(budget=50, window_s=10.0, min_replace_interval_s=0.0)
    pacing.retry_after(100.0, 7.0)
    pacing.retry_after(101.0, 1.0)  # a later, shorter answer does not end the earlier wait
    assert pacing.wait_s(102.0, "BTCUSDT", placing=False) == 5.0
    assert pacing.held(106.9) and not pacing.held(107.0)


def test_a_place_after_a_cancel_on_its_market_waits_the_replace_interval() -> None:
    pacing = Pacing(budget=50, window_s=10.0, min_replace_interval_s=0.5)
    pacing.canceled(100.0, "BTCUSDT")
    assert abs(pacing.wait_s(100.2, "BTCUSDT", placing=True) - 0.3) < 1e-9
    assert pacing.wait_s(100.2, "ETHUSDT", placing=True) == 0  # another market
    assert pacing.wait_s(100.2, "BTCUSDT", placing=False) == 0  # another cancel is no replace
