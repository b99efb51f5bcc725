"""A client's report from its ledger: equity replayed from its fills, marked at fill prices,
and the time window."""

from __future__ import annotations

import argparse
import gc
from decimal import Decimal as D

import pytest

from bosun.apps.ledger import Window, client_report
from bosun.apps.report_cli import utc_ns
from proto.events import OrderFilled
from services.portfolio.roundtrips import RoundTripTracker


def fill(n: int, side: str, qty: str, price: str, fee: str, ts: int | None = None) -> OrderFilled:
    return OrderFilled(id=f"fill-{n}", ts_event=n * 1_000 if ts is None else ts, client_order_id=f"order-{n}",
                       client="alice", venue="binance", symbol="BTCUSDT", side=side, qty=D(qty), price=D(price),
                       fee=D(fee), reason="signal")


# Buy 1 @ 100, buy 1 @ 110 (avg 105, marked at 110), sell 2 @ 120: flat, 30 gross, 4 in fees.
FILLS = [fill(1, "buy", "1", "100", "1"), fill(2, "buy", "1", "110", "1"), fill(3, "sell", "2", "120", "2")]
_tracker = RoundTripTracker()
TRIPS = [t for f in FILLS for t in _tracker.on_fill(f)]


def test_equity_is_marked_at_the_clients_own_fill_prices() -> None:
    report = client_report("alice", D(1000), FILLS, TRIPS)
    assert report.equity == [(1000, D(999)), (2000, D(1008)), (3000, D(1026))]
    assert report.fills == FILLS and len(report.trips) == 1
    assert report.metrics["total_pnl"] == D(26) == report.trips[0].pnl
    assert report.metrics["num_trades"] == 1 and report.metrics["total_fees"] == D(4)


def test_a_report_leaves_nothing_for_the_cyclic_gc() -> None:
    """The replayed book and its bus hold each other while the report is made; a service making
    reports all day must get that memory back when each is made, not at a later collection."""
    gc.collect()
    gc.disable()
    try:
        client_report("alice", D(1000), FILLS, TRIPS)
        assert gc.collect() == 0
    finally:
        gc.enable()


def test_a_window_opens_at_the_equity_the_fills_before_it_left() -> None:
    report = client_report("alice", D(1000), FILLS, TRIPS, Window(since_ns=1500))
    assert report.capital == D(999)
    assert report.fills == FILLS[1:]
    assert report.equity == [(1500, D(999)), (2000, D(1008)), (3000, D(1026))]
    assert report.metrics["total_pnl"] == D(27)

    before_exit = client_report("alice", D(1000), FILLS, TRIPS, Window(since_ns=1500, until_ns=3000))
    assert before_exit.fills == [FILLS[1]] and before_exit.trips == []  # the round trip closed at 3000
    assert before_exit.equity[-1] == (2000, D(1008))


def test_fills_at_one_time_leave_one_point_and_the_clock_never_steps_back() -> None:
    fills = [fill(1, "buy", "1", "100", "0", ts=5000), fill(2, "buy", "1", "110", "0", ts=5000),
             fill(3, "sell", "1", "90", "0", ts=4000)]
    # After all three: 1 held at cost 105 marked at 90 (-15), and -15 realized (sold 1 of avg 105 at 90).
    assert client_report("alice", D(1000), fills, []).equity == [(5000, D(970))]


def test_empty_ledger_and_bad_windows() -> None:
    assert client_report("alice", D(1000), [], []).metrics["total_pnl"] == 0
    with pytest.raises(ValueError, match="--since must be before --until"):
        Window(since_ns=2, until_ns=2)


def test_times_are_iso_8601_utc_unless_they_name_an_offset() -> None:
    assert utc_ns("2024-01-31") == 1_706_659_200 * 10**9
    assert utc_ns("2024-01-31T01:00:00.5+01:00") == 1_706_659_200 * 10**9 + 500_000_000
    assert utc_ns("2024-01-31T00:00:00Z") == 1_706_659_200 * 10**9
    with pytest.raises(argparse.ArgumentTypeError, match="'yesterday' is not an ISO-8601 time"):
        utc_ns("yesterday")


def test_the_strategies_and_execution_quality_of_a_window_come_from_its_order_log() -> None:
    from proto.events import SubmitOrder, TargetApproved, TargetPosition
    from services.portfolio.execution_quality import OrderJournal

    log = []
    for f in FILLS:  # one target and one order per fill, decided 10 ns before it at a price 1 below
        n = f.id.removeprefix("fill-")
        target = TargetPosition(id=f"t{n}", ts_event=f.ts_event - 10, client="alice", venue="binance",
                                symbol="BTCUSDT", qty=D(1), strategy="sma", price=f.price - 1)
        log += [TargetApproved(id=target.id, ts_event=target.ts_event, target=target),
                SubmitOrder(id=f.client_order_id, ts_event=target.ts_event, client="alice", venue="binance",
                            symbol="BTCUSDT", side=f.side, qty=f.qty, order_type="market", target_id=target.id), f]
    journal = OrderJournal().feed(log)
    whole = client_report("alice", D(1000), FILLS, TRIPS, journal=journal)
    assert list(whole.metrics["by_strategy"]) == ["sma"] and whole.metrics["execution"]["orders"] == 3
    # buys 1@100 and 1@110 against 99 and 109: +2; sells 2@120 against 119: -2 (a sell above its price gains)
    assert whole.metrics["execution"]["slippage_cost"] == D(0)
    late = client_report("alice", D(1000), FILLS, TRIPS, Window(since_ns=1500), journal)
    assert late.metrics["execution"]["orders"] == 2  # the orders decided in the window
    assert late.metrics["execution"]["signal_to_fill_ms"] == {"p50": 1e-05, "p95": 1e-05, "max": 1e-05}  # 10 ns
    assert client_report("alice", D(1000), FILLS, TRIPS).metrics["by_strategy"] == {
        "unknown": whole.metrics["by_strategy"]["sma"]}  # no order log: the same trip, its strategy unknown


def test_funding_paid_is_in_the_equity_at_its_time_and_in_total_funding() -> None:
    key = ("alice", "binance", "BTCUSDT")
    funding = [(key, 1500, D("0.5")), (key, 2500, D("1.2"))]  # paid on 1 held, then on 2 held
    report = client_report("alice", D(1000), FILLS, TRIPS, funding=funding)
    assert report.equity == [(1000, D(999)), (1500, D("998.5")), (2000, D("1007.5")), (2500, D("1006.3")),
                             (3000, D("1024.3"))]
    assert report.metrics["total_funding"] == D("1.7") and report.metrics["total_pnl"] == D("24.3")
    assert "total_funding" not in client_report("alice", D(1000), FILLS, TRIPS).metrics
    late = client_report("alice", D(1000), FILLS, TRIPS, Window(since_ns=1800), funding=funding)
    assert late.capital == D("998.5") and late.metrics["total_funding"] == D("1.2")
    assert late.equity[0] == (1800, D("998.5")) and late.equity[-1] == (3000, D("1024.3"))


def test_with_the_bars_of_its_markets_the_equity_is_marked_as_a_backtest_marks_it() -> None:
    from proto.events import Bar

    def bar(n: int, close: str) -> Bar:
        return Bar(id=f"b{n}", ts_event=n * 1_000, venue="binance", symbol="BTCUSDT", interval="1s",
                   ts_open=(n - 1) * 1_000, open=D(close), high=D(close), low=D(close), close=D(close), volume=D(1))

    # Bought at the second bar's open (the first's close time: it counts from the second bar on), sold within
    # the third; 0.5 of funding paid at 1500, due before the second bar's close.
    fills = [fill(1, "buy", "1", "100", "1", ts=1_000), fill(2, "sell", "1", "110", "1", ts=2_500)]
    report = client_report("alice", D(1000), fills, [], funding=[(("alice", "binance", "BTCUSDT"), 1_500, D("0.5"))],
                           bars=[bar(1, "100"), bar(2, "105"), bar(3, "120")])
    assert report.equity == [(1_000, D(1000)), (2_000, D("1003.5")), (3_000, D("1007.5"))]
    assert report.metrics["total_pnl"] == D("7.5") and report.metrics["max_drawdown"] == 0
