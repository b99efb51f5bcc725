"""Execution quality and the per-client/strategy/symbol/venue breakdowns on a small order log
built by hand, against figures worked out by hand (in the comments)."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from types import SimpleNamespace

import pytest

from proto import events as ev
from services.portfolio import analytics, metrics
from services.portfolio.execution_quality import OrderJournal, grouped, quality
from services.portfolio.roundtrips import RoundTripTracker

D = Decimal
MS = 1_000_000
S = 1_000 * MS


def target(tid: str, strategy: str, venue: str, symbol: str, qty: str, price: str, ts: int) -> ev.TargetApproved:
    t = ev.TargetPosition(id=tid, ts_event=ts, client="alice", venue=venue, symbol=symbol, qty=D(qty),
                          strategy=strategy, price=D(price))
    return ev.TargetApproved(id=tid, ts_event=ts, target=t)


def submit(coid: str, tid: str, venue: str, symbol: str, side: str, qty: str, ts: int) -> ev.SubmitOrder:
    return ev.SubmitOrder(id=coid, ts_event=ts, client="alice", venue=venue, symbol=symbol, side=side, qty=D(qty),
                          order_type="market", target_id=tid)


def accepted(coid: str, venue: str, symbol: str, ts: int) -> ev.OrderAccepted:
    return ev.OrderAccepted(id=coid, ts_event=ts, client_order_id=coid, venue_order_id=f"v-{coid}", client="alice",
                            venue=venue, symbol=symbol)


def fill(fid: str, coid: str, venue: str, symbol: str, side: str, qty: str, price: str, ts: int) -> ev.OrderFilled:
    return ev.OrderFilled(id=fid, ts_event=ts, client_order_id=coid, client="alice", venue=venue, symbol=symbol,
                          side=side, qty=D(qty), price=D(price), fee=D(0))


# Strategy "trend" goes long 2 BTC on binance at a decision price of 100 and out at 110; strategy
# "revert" goes short 1 ETH on bybit at 200 (half fills, a second order is rejected) and buys the
# half back at 190.
LOG = [
    target("T1", "trend", "binance", "BTC", "2", "100", 0),
    submit("o1", "T1", "binance", "BTC", "buy", "2", 0),
    accepted("o1", "binance", "BTC", 5 * MS),
    fill("f1", "o1", "binance", "BTC", "buy", "1", "101", 10 * MS),
    fill("f2", "o1", "binance", "BTC", "buy", "1", "102", 20 * MS),
    fill("f2", "o1", "binance", "BTC", "buy", "1", "102", 20 * MS),  # a redelivery: counted once
    target("T2", "revert", "bybit", "ETH", "-1", "200", 1 * S),
    submit("o2", "T2", "bybit", "ETH", "sell", "1", 1 * S),
    accepted("o2", "bybit", "ETH", 1 * S + 2 * MS),
    fill("f3", "o2", "bybit", "ETH", "sell", "0.5", "198", 1 * S + 50 * MS),
    target("T3", "revert", "bybit", "ETH", "-1", "200", 2 * S),
    submit("o3", "T3", "bybit", "ETH", "sell", "1", 2 * S),
    ev.OrderRejected(id="o3", ts_event=2 * S, client_order_id="o3", client="alice", venue="bybit", symbol="ETH",
                     reason="insufficient balance"),
    target("T4", "trend", "binance", "BTC", "0", "110", 3 * S),
    submit("o4", "T4", "binance", "BTC", "sell", "2", 3 * S),
    accepted("o4", "binance", "BTC", 3 * S + 1 * MS),
    fill("f4", "o4", "binance", "BTC", "sell", "2", "109", 3 * S + 30 * MS),
    target("T5", "revert", "bybit", "ETH", "0", "190", 4 * S),
    submit("o5", "T5", "bybit", "ETH", "buy", "0.5", 4 * S),
    accepted("o5", "bybit", "ETH", 4 * S + 3 * MS),
    fill("f5", "o5", "bybit", "ETH", "buy", "0.5", "190", 4 * S + 40 * MS),
]


def bps(cost: Fraction, weight: Fraction) -> float:
    return float(cost / weight * 10_000)


def test_execution_quality_equals_the_hand_computation() -> None:
    journal = OrderJournal().feed(LOG)
    got = quality(journal.records())
    # slippage, + a cost: o1 buys 1@101 and 1@102 against 100 (+1, +2); o2 sells 0.5@198 against 200 (+1);
    # o4 sells 2@109 against 110 (+2); o5 buys 0.5@190 against 190 (0). Weights: qty x decision price.
    cost = Fraction(1 + 2 + 1 + 2)
    weight = Fraction(2 * 100 + 100 + 2 * 110 + 95)
    assert got == {
        "orders": 5, "rejected": 1, "order_success_rate": 4 / 5, "fills": 5,
        "fill_ratio": float(Fraction(5, 1) / Fraction(13, 2)),  # filled 2 + 0.5 + 0 + 2 + 0.5 of 2 + 1 + 1 + 2 + 0.5
        "slippage_bps": bps(cost, weight), "slippage_cost": D(6),
        # first fill - target time: 10, 50, 30, 40 ms; accepted - submitted: 5, 2, 1, 3 ms (nearest rank)
        "signal_to_fill_ms": {"p50": 30.0, "p95": 50.0, "max": 50.0},
        "order_to_ack_ms": {"p50": 2.0, "p95": 5.0, "max": 5.0},
    }


def test_breakdowns_and_execution_per_venue() -> None:
    journal = OrderJournal().feed(LOG)
    tracker = RoundTripTracker()
    fills = {e.id: e for e in LOG if isinstance(e, ev.OrderFilled)}  # the redelivered f2 once
    trips = [t for f in fills.values() for t in tracker.on_fill(f)]
    m = analytics.compute(trips, journal, metrics.compute(trips, [], D(1000)))
    assert list(m) == ["by_client", "by_strategy", "by_symbol", "by_venue", "execution"]
    # trend: long 2 BTC, entry avg 101.5, exit 109: +15; revert: short 0.5 ETH 198 -> 190: +4
    assert {k: g["pnl"] for k, g in m["by_strategy"].items()} == {"revert": D(4), "trend": D(15)}
    assert {k: g["pnl"] for k, g in m["by_venue"].items()} == {"binance": D(15), "bybit": D(4)}
    assert {k: g["pnl"] for k, g in m["by_symbol"].items()} == {"BTC": D(15), "ETH": D(4)}
    assert m["by_client"]["alice"]["num_trades"] == 2 and m["by_client"]["alice"]["win_rate"] == 1.0
    assert m["by_strategy"]["trend"]["turnover"] == 2 * (D("101.5") + 109)
    binance, bybit = m["execution"]["by_venue"]["binance"], m["execution"]["by_venue"]["bybit"]
    assert binance["slippage_bps"] == bps(Fraction(5), Fraction(2 * 100 + 2 * 110))
    assert bybit["slippage_bps"] == bps(Fraction(1), Fraction(100 + 95))
    assert (binance["order_success_rate"], bybit["order_success_rate"]) == (1.0, 2 / 3)
    assert (binance["fill_ratio"], bybit["fill_ratio"]) == (1.0, 0.4)  # bybit: 0.5 + 0 + 0.5 of 1 + 1 + 0.5


def test_an_unknown_target_and_no_orders_give_none_not_zero() -> None:
    orphan = OrderJournal().feed([submit("o9", "gone", "binance", "BTC", "buy", "1", 0),
                                  fill("f9", "o9", "binance", "BTC", "buy", "1", "101", 1)])
    got = quality(orphan.records())
    assert got["slippage_bps"] is None and got["fill_ratio"] == 1.0
    assert orphan.strategy_of_trip(SimpleNamespace(venue="binance", entry_fill_id="f9")) == "unknown"
    assert orphan.strategy_of_trip(SimpleNamespace(venue="binance", entry_fill_id="f0")) == "unknown"  # not counted
    empty = quality([])
    assert empty["order_success_rate"] is None and empty["signal_to_fill_ms"] is None


def test_the_journal_is_bounded_and_says_how_many_orders_it_forgot() -> None:
    journal = OrderJournal(max_orders=2)
    journal.feed(submit(f"o{n}", "T", "binance", "BTC", "buy", "1", n) for n in range(5))
    assert list(journal.orders) == ["o3", "o4"] and journal.forgotten == 3
    with pytest.raises(KeyError):
        journal.orders["o0"]


def test_the_targets_and_the_fills_counted_are_bounded_oldest_first() -> None:
    # A target approved again keeps its place: t0 is still the oldest, dropped when t2 comes.
    journal = OrderJournal(max_orders=1, max_targets=2).feed([
        target("t0", "a", "binance", "BTC", "1", "100", 0), target("t1", "b", "binance", "BTC", "1", "100", 1),
        target("t0", "c", "binance", "BTC", "1", "100", 2), target("t2", "d", "binance", "BTC", "1", "100", 3),
        submit("o0", "t0", "binance", "BTC", "buy", "1", 4), submit("o1", "t1", "binance", "BTC", "buy", "1", 5),
        *(fill(f"f{n}", "o1", "binance", "BTC", "buy", "0.1", "101", 6 + n) for n in range(6))])
    assert [r.strategy for r in journal.records()] == ["b"] and journal.forgotten == 1
    # 4 fills per order remembered: f0 and f1 are forgotten, so a redelivered f0 counts again.
    assert list(journal.fill_orders) == [("binance", f"f{n}") for n in range(2, 6)]
    journal.feed([fill("f0", "o1", "binance", "BTC", "buy", "0.1", "101", 20)])
    assert journal.records()[0].fills == 7


def test_a_group_holding_every_trip_reads_the_whole_runs_figures_exactly() -> None:
    journal = OrderJournal().feed(LOG)
    tracker = RoundTripTracker()
    trips = [t for e in (LOG[3], LOG[4], LOG[16]) for t in tracker.on_fill(e)]  # f1, f2, f4: trend's BTC trip
    assert len(trips) == 1
    whole = metrics.compute(trips, [], D(1000))
    for key in (lambda t: t.symbol, lambda t: t.venue, lambda t: t.client):
        assert metrics.breakdown(trips, key, whole) == metrics.breakdown(trips, key)
    records = journal.records()
    for key in (lambda r: r.order.venue, lambda r: r.order.client):
        assert grouped(records, key, quality(records)) == grouped(records, key)
