"""services.portfolio.metrics against hand-computed values."""

from __future__ import annotations

import math
from decimal import Decimal as D

import pytest

from services.portfolio import metrics
from services.portfolio.roundtrips import RoundTrip

MIN = 60 * 1_000_000_000
DAY = 86_400 * 1_000_000_000
T0 = 1_727_740_800 * 1_000_000_000  # 2024-10-01T00:00:00Z


def trip(entry_min: int, exit_min: int, pnl: str, *, side: str = "long", symbol: str = "BTCUSDT",
         qty: str = "1", entry: str = "100", exit_: str = "101", fees: str = "0.1",
         reason: str = "signal") -> RoundTrip:
    return RoundTrip(entry_time_ns=T0 + entry_min * MIN, exit_time_ns=T0 + exit_min * MIN, symbol=symbol,
                     venue="binance", client="c", side=side, qty=D(qty), entry_price=D(entry),
                     exit_price=D(exit_), fees=D(fees), pnl=D(pnl), return_pct=D(0),
                     duration_s=(exit_min - entry_min) * 60.0, exit_reason=reason)


TRIPS = [
    trip(0, 10, "5", side="long"),
    trip(10, 20, "-2", side="short", entry="101", exit_="102"),
    trip(30, 40, "3", side="long", symbol="ETHUSDT"),
    trip(40, 45, "0", side="short"),
    trip(50, 60, "-1", side="long", reason="end_of_data"),
]


def test_trade_stats_by_hand() -> None:
    s = metrics.trade_stats(TRIPS)
    assert s["num_trades"] == 5
    assert s["win_rate"] == pytest.approx(2 / 5)
    assert s["win_rate_long"] == pytest.approx(2 / 3)
    assert s["win_rate_short"] == 0.0
    assert s["avg_win"] == D(4)
    assert s["avg_loss"] == D("-1.5")
    assert s["largest_win"] == D(5)
    assert s["largest_loss"] == D(-2)
    assert s["profit_factor"] == D(8) / D(3)
    assert s["expectancy"] == D(1)
    # exit order: +5, -2, +3, 0, -1: a breakeven breaks runs
    assert s["max_consecutive_wins"] == 1
    assert s["max_consecutive_losses"] == 1


def test_streaks_follow_exit_time_not_list_order() -> None:
    trips = [trip(30, 40, "1"), trip(0, 10, "1"), trip(10, 20, "-1"), trip(40, 50, "1")]
    s = metrics.trade_stats(trips)
    assert (s["max_consecutive_wins"], s["max_consecutive_losses"]) == (2, 1)


def test_no_trades_gives_none_not_zero() -> None:
    s = metrics.trade_stats([])
    assert s["num_trades"] == 0
    assert s["win_rate"] is None and s["profit_factor"] is None and s["expectancy"] is None
    assert s["avg_win"] is None and s["largest_loss"] is None


def test_profit_factor_none_without_losses() -> None:
    assert metrics.trade_stats([trip(0, 1, "1")])["profit_factor"] is None


def test_drawdown_amount_pct_and_duration() -> None:
    capital = D(100)
    equity = [(T0 + 1 * MIN, D(110)), (T0 + 2 * MIN, D(99)), (T0 + 3 * MIN, D(105)),
              (T0 + 4 * MIN, D(111)), (T0 + 5 * MIN, D(50)), (T0 + 6 * MIN, D(60))]
    dd = metrics.drawdown(equity, capital, T0)
    assert dd["max_drawdown"] == D(61)  # 111 -> 50
    assert dd["max_drawdown_pct"] == D(61) / D(111) * 100
    # peak 110 at 1m recovered at 4m (180 s); peak 111 at 4m never recovered: 4m -> 6m (120 s)
    assert dd["max_drawdown_duration_s"] == 180.0


def test_drawdown_from_capital_when_first_mark_is_below_it() -> None:
    dd = metrics.drawdown([(T0 + MIN, D(90)), (T0 + 2 * MIN, D(95))], D(100), T0)
    assert dd["max_drawdown"] == D(10)
    assert dd["max_drawdown_pct"] == D(10)
    assert dd["max_drawdown_duration_s"] == 120.0


def test_daily_returns_take_the_last_mark_of_each_utc_day() -> None:
    equity = [(T0 + 10 * MIN, D(105)), (T0 + DAY - 1, D(110)),  # day 1 closes at 110
              (T0 + DAY, D(99)), (T0 + 2 * DAY - MIN, D(121)),  # day 2 closes at 121
              (T0 + 2 * DAY + MIN, D("108.9"))]  # day 3
    r = metrics.daily_returns(equity, D(100))
    assert r == pytest.approx([0.10, 0.10, -0.10])


def test_sharpe_and_sortino_by_hand() -> None:
    r = [0.01, -0.02, 0.03, 0.0]
    mean = 0.005
    sd = math.sqrt(sum((x - mean) ** 2 for x in r) / 3)
    assert metrics.sharpe(r) == pytest.approx(mean / sd * math.sqrt(365))
    downside = math.sqrt(0.02 ** 2 / 4)
    assert metrics.sortino(r) == pytest.approx(mean / downside * math.sqrt(365))
    assert metrics.sharpe([0.01]) is None
    assert metrics.sharpe([0.01, 0.01]) is None  # no variance
    assert metrics.sortino([0.01, 0.02]) is None  # no downside


def test_exposure_is_the_union_of_holding_intervals() -> None:
    trips = [trip(0, 10, "1"), trip(5, 15, "1", symbol="ETHUSDT"), trip(30, 40, "1")]
    assert metrics.exposure_pct(trips, T0, T0 + 100 * MIN) == pytest.approx(25.0)
    assert metrics.exposure_pct([], T0, T0 + MIN) == 0.0
    assert metrics.exposure_pct(trips, T0, T0) is None


def test_cagr() -> None:
    year = 365 * DAY
    assert metrics.cagr_pct(D(100), D(121), 2 * year) == pytest.approx(10.0)
    assert metrics.cagr_pct(D(100), D(-5), year) == -100.0
    assert metrics.cagr_pct(D(100), D(110), 0) is None


def test_compute_totals_fees_turnover_and_calmar() -> None:
    capital = D(1000)
    equity = [(T0 + DAY, D(1010)), (T0 + 2 * DAY, D(990)), (T0 + 3 * DAY, D(1005))]
    m = metrics.compute(TRIPS, equity, capital, start_ns=T0)
    assert m["total_pnl"] == D(5)
    assert m["total_return_pct"] == D("0.5")
    assert m["total_fees"] == D("0.5")
    # sum of qty * (entry + exit) over the legs
    assert m["turnover"] == D(201) * 3 + D(203) + D(201)
    assert m["avg_holding_s"] == pytest.approx((10 + 10 + 10 + 5 + 10) * 60 / 5)
    assert m["max_drawdown"] == D(20)
    assert m["calmar"] == pytest.approx(m["cagr_pct"] / float(D(20) / D(1010) * 100))
    expected_keys = {
        "total_pnl", "total_return_pct", "cagr_pct", "num_trades", "win_rate", "win_rate_long", "win_rate_short",
        "avg_win", "avg_loss", "largest_win", "largest_loss", "profit_factor", "expectancy", "sharpe", "sortino",
        "calmar", "max_drawdown", "max_drawdown_pct", "max_drawdown_duration_s", "exposure_pct", "avg_holding_s",
        "max_consecutive_wins", "max_consecutive_losses", "total_fees", "turnover"}
    assert expected_keys <= m.keys()


def test_breakdown_groups_by_key() -> None:
    by_symbol = metrics.breakdown(TRIPS, lambda t: t.symbol)
    assert list(by_symbol) == ["BTCUSDT", "ETHUSDT"]
    assert by_symbol["BTCUSDT"]["num_trades"] == 4
    assert by_symbol["BTCUSDT"]["pnl"] == D(2)
    assert by_symbol["ETHUSDT"]["win_rate"] == 1.0
    by_reason = metrics.breakdown(TRIPS, lambda t: t.exit_reason)
    assert by_reason["end_of_data"]["pnl"] == D(-1)


@pytest.mark.parametrize("step", [D(100), D(7)], ids=["cents", "28-digit-rounded"])
def test_drawdown_maxima_equal_a_division_at_every_point(step: D) -> None:
    # drawdown divides only when equity is below any since the peak; every point must agree, also when
    # the falls are rounded to 28 digits
    import random

    rng = random.Random(11)
    capital = D(1000)
    equity, e = [], capital
    for i in range(3000):
        e += D(rng.randint(-700, 690)) / step
        equity.append((T0 + i * MIN, e))
    peak, max_dd, max_pct = capital, D(0), D(0)
    for _, value in equity:
        peak = max(peak, value)
        max_dd = max(max_dd, peak - value)
        max_pct = max(max_pct, (peak - value) / peak * 100)
    dd = metrics.drawdown(equity, capital, T0)
    assert (dd["max_drawdown"], dd["max_drawdown_pct"]) == (max_dd, max_pct)
    assert str(dd["max_drawdown_pct"]) == str(max_pct)
    assert max_pct > 0
