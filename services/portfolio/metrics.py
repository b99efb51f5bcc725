"""Performance metrics: pure functions of round trips and an equity series.

One module for the backtest and the live portfolio service, so both report the same
numbers the same way. Money stays `Decimal` (exact); ratios that need square roots or
powers (sharpe, sortino, calmar, cagr) are floats. A metric that is undefined for the
input (no trades, no losing trade, fewer than two daily returns, ...) is `None`, never
a made-up 0 or infinity.

Definitions (`capital` is the starting equity; the equity series is `(time_ns, equity)`
in time order, equity = capital + realized + unrealized PnL, net of fees):

- total_pnl: last equity - capital.
- total_return_pct: total_pnl / capital * 100.
- cagr_pct: ((last equity / capital) ** (1 / years) - 1) * 100, years = span / 365 days;
  -100 when the equity ends at or below zero.
- num_trades: closed round trips.
- win_rate, win_rate_long, win_rate_short: share (0..1) of round trips with pnl > 0, over
  all, long and short round trips; a round trip at exactly 0 counts in the denominator only.
- avg_win / avg_loss: mean pnl of winning / losing round trips (avg_loss is negative).
- largest_win / largest_loss: the highest / lowest round-trip pnl among wins / losses.
- profit_factor: sum of winning pnl / |sum of losing pnl| (None without a loss).
- expectancy: mean pnl per round trip, in quote currency.
- sharpe: mean / sample standard deviation of daily returns * sqrt(365); risk-free rate 0.
- sortino: mean daily return / downside deviation * sqrt(365), where the downside
  deviation is sqrt(sum(min(r, 0)^2) / n) over all n daily returns.
- calmar: cagr_pct / max_drawdown_pct.
  Daily returns: the equity at the last point of each UTC day, chained from `capital`
  (r_1 = day_1 / capital - 1, r_i = day_i / day_(i-1) - 1).
- max_drawdown: the largest fall from a running peak, positive, in quote currency; the
  running peak starts at `capital`.
- max_drawdown_pct: the largest fall from a running peak as a percent of that peak
  (it may come from a different peak than max_drawdown).
- max_drawdown_duration_s: the longest time from a peak until equity is back at or above
  it (or until the end of the series, if it never is).
- exposure_pct: the share of [start, end] during which any position is open (the union
  of the round trips' [entry, exit] intervals), * 100.
- avg_holding_s: mean round-trip duration.
- max_consecutive_wins / max_consecutive_losses: longest runs in exit-time order; a
  round trip at exactly 0 breaks both runs.
- total_fees: sum of the round trips' fees (each fill's fee is split among the round
  trips it belongs to, so this equals the sum of fill fees once everything is closed).
- turnover: sum of fill notional, qty * price. Each fill's quantity belongs to exactly one
  entry or exit leg of a round trip, so this is sum(qty * (entry_price + exit_price)).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from operator import attrgetter, itemgetter
from typing import Any, Protocol, TypeVar

NS_PER_S = 1_000_000_000
NS_PER_DAY = 86_400 * NS_PER_S
DAYS_PER_YEAR = 365
ZERO = Decimal(0)
HUNDRED = Decimal(100)


class RoundTripLike(Protocol):
    """What metrics read of a round trip (services.portfolio.roundtrips.RoundTrip)."""

    entry_time_ns: int
    exit_time_ns: int
    symbol: str
    side: str  # "long" | "short"
    qty: Decimal
    entry_price: Decimal
    exit_price: Decimal
    fees: Decimal
    pnl: Decimal  # net of fees
    duration_s: float
    exit_reason: str


EquityPoint = tuple[int, Decimal]
_time = itemgetter(0)  # of an EquityPoint
_pnl = attrgetter("pnl")  # of a round trip
T = TypeVar("T")
_exit_time = attrgetter("exit_time_ns")  # of a round trip


def compute(trips: Sequence[RoundTripLike], equity: Sequence[EquityPoint], capital: Decimal,
            start_ns: int | None = None) -> dict[str, Any]:
    """Every metric of the module docstring. `start_ns` is when trading began (default:
    the first equity point); the series ends at its last point."""
    if start_ns is None:
        start_ns = equity[0][0] if equity else 0
    start = start_ns
    end = equity[-1][0] if equity else start
    final = equity[-1][1] if equity else capital
    total_pnl = final - capital
    cagr = cagr_pct(capital, final, end - start)
    dd = drawdown(equity, capital, start)
    daily = daily_returns(equity, capital)
    result: dict[str, Any] = {
        "total_pnl": total_pnl,
        "total_return_pct": total_pnl / capital * HUNDRED if capital else None,
        "cagr_pct": cagr,
        **trade_stats(trips),
        "sharpe": sharpe(daily),
        "sortino": sortino(daily),
        "calmar": cagr / float(dd["max_drawdown_pct"]) if cagr is not None and dd["max_drawdown_pct"] else None,
        **dd,
        "exposure_pct": exposure_pct(trips, start, end),
        "avg_holding_s": (sum(t.duration_s for t in trips) / len(trips)) if trips else None,
        "total_fees": sum((t.fees for t in trips), ZERO),
        "turnover": sum((t.qty * (t.entry_price + t.exit_price) for t in trips), ZERO),
    }
    return result


def trade_stats(trips: Sequence[RoundTripLike]) -> dict[str, Any]:
    """Counts, win rates, averages, extremes and streaks of the round trips (one pass in exit order,
    no call per round trip: a backtest of thousands of trades runs this once per group)."""
    pnls: list[Decimal] = []
    wins: list[Decimal] = []
    losses: list[Decimal] = []
    longs = long_wins = shorts = short_wins = 0
    win_run = loss_run = most_wins = most_losses = 0  # streaks; a round trip at exactly 0 breaks both
    for t in sorted(trips, key=_exit_time):
        pnl = t.pnl
        pnls.append(pnl)
        won = pnl > 0
        if t.side == "long":
            longs += 1
            long_wins += won
        elif t.side == "short":
            shorts += 1
            short_wins += won
        if won:
            wins.append(pnl)
            win_run, loss_run = win_run + 1, 0
            if win_run > most_wins:
                most_wins = win_run
        elif pnl < 0:
            losses.append(pnl)
            win_run, loss_run = 0, loss_run + 1
            if loss_run > most_losses:
                most_losses = loss_run
        else:
            win_run = loss_run = 0
    gross_loss = -sum(losses, ZERO)
    return {
        "num_trades": len(pnls),
        "win_rate": _share(len(wins), len(pnls)),
        "win_rate_long": _share(long_wins, longs),
        "win_rate_short": _share(short_wins, shorts),
        "avg_win": sum(wins, ZERO) / len(wins) if wins else None,
        "avg_loss": sum(losses, ZERO) / len(losses) if losses else None,
        "largest_win": max(wins) if wins else None,
        "largest_loss": min(losses) if losses else None,
        "profit_factor": sum(wins, ZERO) / gross_loss if gross_loss else None,
        "expectancy": sum(pnls, ZERO) / len(pnls) if pnls else None,
        "max_consecutive_wins": most_wins,
        "max_consecutive_losses": most_losses,
    }


TRADE_STATS = ("num_trades", "win_rate", "win_rate_long", "win_rate_short", "avg_win", "avg_loss", "largest_win",
               "largest_loss", "profit_factor", "expectancy", "max_consecutive_wins", "max_consecutive_losses")


def breakdown(trips: Sequence[RoundTripLike], key: Callable[[RoundTripLike], str],
              whole: Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Per-group trade metrics (e.g. key=lambda t: t.symbol or t.exit_reason), groups sorted by name:
    trade_stats, plus the group's pnl, fees, turnover and avg_holding_s as `compute` defines them.
    `whole`, compute's result over the same `trips`, gives a group holding every trip its figures
    (the same values) instead of computing them again: a run on one market has one group per key."""
    return breakdowns(trips, {"": key}, whole)[""]


def breakdowns(trips: Sequence[RoundTripLike], keys: Mapping[str, Callable[[RoundTripLike], str]],
               whole: Mapping[str, Any] | None = None) -> dict[str, dict[str, dict[str, Any]]]:
    """`breakdown` per named key, over the same `trips`: the figures of a group holding every trip are
    made once for all the keys (a run on one market has one such group per key)."""
    everything: dict[str, Any] | None = None
    result: dict[str, dict[str, dict[str, Any]]] = {}
    for by, key in keys.items():
        groups = groups_of(trips, key)
        if whole is not None and len(groups) == 1:
            if everything is None:
                everything = {**{k: whole[k] for k in TRADE_STATS}, "pnl": sum(map(_pnl, trips), ZERO),
                              "fees": whole["total_fees"], "turnover": whole["turnover"],
                              "avg_holding_s": whole["avg_holding_s"]}
            [name] = groups
            result[by] = {name: dict(everything)}
            continue
        result[by] = {
            name: {
                **trade_stats(ts),
                "pnl": sum((t.pnl for t in ts), ZERO),
                "fees": sum((t.fees for t in ts), ZERO),
                "turnover": sum((t.qty * (t.entry_price + t.exit_price) for t in ts), ZERO),
                "avg_holding_s": sum(t.duration_s for t in ts) / len(ts),
            }
            for name, ts in sorted(groups.items())
        }
    return result


def groups_of(items: Sequence[T], key: Callable[[T], str]) -> dict[str, list[T]]:
    """`items` by `key`, groups in the order their first item comes. The keys are computed in C (map), and
    when they are all one, the group is the whole sequence, with no loop (a run on one market)."""
    keys = list(map(key, items))
    if len(set(keys)) == 1:
        return {keys[0]: list(items)}
    groups: dict[str, list[T]] = {}
    for name, item in zip(keys, items):
        group = groups.get(name)
        if group is None:
            groups[name] = [item]
        else:
            group.append(item)
    return groups


def cagr_pct(capital: Decimal, final: Decimal, span_ns: int) -> float | None:
    if capital <= 0 or span_ns <= 0:
        return None
    if final <= 0:
        return -100.0
    years = span_ns / (DAYS_PER_YEAR * NS_PER_DAY)
    try:
        return (math.exp(math.log(final / capital) / years) - 1) * 100
    except OverflowError:  # a short, hugely profitable run: no float holds the annualised figure
        return None


def drawdown(equity: Sequence[EquityPoint], capital: Decimal, start_ns: int) -> dict[str, Any]:
    """max_drawdown (quote), max_drawdown_pct and max_drawdown_duration_s; see the module doc."""
    peak, peak_t = capital, start_ns
    trough = capital  # the lowest equity since the current peak
    max_dd = ZERO
    max_pct = ZERO
    longest = 0
    for t, e in equity:
        # Below the peak but not below the trough, a point can raise neither maximum (the fall, and its
        # percent, rounded or not, grow as equity falls): two comparisons skip most points.
        if trough <= e < peak:
            continue
        if e >= peak:
            longest = max(longest, t - peak_t)
            peak = trough = e
            peak_t = t
            continue
        trough = e
        fall = peak - e
        if fall > max_dd:
            max_dd = fall
        if peak > 0:
            pct = fall / peak * HUNDRED
            if pct > max_pct:
                max_pct = pct
    if equity and equity[-1][1] < peak:
        longest = max(longest, equity[-1][0] - peak_t)
    return {
        "max_drawdown": max_dd,
        "max_drawdown_pct": max_pct,
        "max_drawdown_duration_s": longest / NS_PER_S,
    }


def daily_returns(equity: Sequence[EquityPoint], capital: Decimal) -> list[float]:
    """Returns of the end-of-UTC-day equity, chained from `capital` (see the module doc)."""
    prev = capital
    out = []
    for _, e in daily_closes(equity):
        out.append(float(e / prev - 1) if prev else 0.0)
        prev = e
    return out


def daily_closes(equity: Sequence[EquityPoint]) -> list[EquityPoint]:
    """(start of the UTC day, the equity at the day's last point) for each day with a point.
    `equity` must be in time order, as everywhere in this module: each day's close is found
    by bisection, so points out of order would be skipped, not reported."""
    closes: list[EquityPoint] = []
    i = 0
    while i < len(equity):
        day = equity[i][0] // NS_PER_DAY * NS_PER_DAY
        # the series is in time order: bisect for the next day's first point rather than visit each point
        i = bisect_left(equity, day + NS_PER_DAY, lo=i, key=_time)
        closes.append((day, equity[i - 1][1]))
    return closes


def sharpe(returns: Sequence[float]) -> float | None:
    if len(returns) < 2:
        return None
    mean = sum(returns) / len(returns)
    var = sum((r - mean) ** 2 for r in returns) / (len(returns) - 1)
    return mean / math.sqrt(var) * math.sqrt(DAYS_PER_YEAR) if var > 0 else None


def sortino(returns: Sequence[float]) -> float | None:
    if len(returns) < 2:
        return None
    mean = sum(returns) / len(returns)
    downside = math.sqrt(sum(min(r, 0.0) ** 2 for r in returns) / len(returns))
    return mean / downside * math.sqrt(DAYS_PER_YEAR) if downside > 0 else None


def exposure_pct(trips: Iterable[RoundTripLike], start_ns: int, end_ns: int) -> float | None:
    """Share of [start, end] covered by the union of the round trips' holding intervals."""
    if end_ns <= start_ns:
        return None
    covered = 0
    cur_start = cur_end = None
    # Conditional expressions, not max/min: two builtin calls fewer per round trip.
    for a, b in sorted((t.entry_time_ns if t.entry_time_ns > start_ns else start_ns,
                        t.exit_time_ns if t.exit_time_ns < end_ns else end_ns) for t in trips):
        if cur_end is not None and a <= cur_end:
            cur_end = max(cur_end, b)
            continue
        if cur_end is not None:
            covered += cur_end - cur_start
        cur_start, cur_end = a, b
    if cur_end is not None:
        covered += cur_end - cur_start
    return covered / (end_ns - start_ns) * 100


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None
