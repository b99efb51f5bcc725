"""One client's report from the live ledger: its stored fills and round trips in a time
window, and an equity curve recomputed from its fills.

Equity: the ledger holds no bars, so the curve has a point per fill time (the last fill at a
time wins), the client's fills replayed in handling order through the portfolio actor with no
price snapshot: each open position is marked at its market's last fill price of this client
(never another client's). A backtest marks every bar at its close. So the trade metrics
(num_trades, win rates, averages, extremes, streaks, profit factor, expectancy, total_fees,
turnover, avg_holding_s) read the same on both; total_pnl equals a backtest's when the
positions are flat at the end (an open position counts at its last fill price: its entry fees
paid, no price move); drawdown, sharpe, sortino, calmar, cagr and exposure come from a far
sparser curve and are not comparable with a backtest's.

Funding a perpetual position paid is in the equity at its funding time, as stored (a point of
its own), and its sum in metrics.json's total_funding, as a backtest has them.

Window [since, until): the fills in it and the round trips that closed in it. The fills before
it are replayed too, and the curve starts at the equity they leave: the window's capital, which
its total_pnl and returns are measured from."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from bosun.runtime.clock import SimClock
from bosun.runtime.inproc import InProcessBus
from proto.events import OrderFilled
from services.portfolio import analytics
from services.portfolio import metrics as perf
from services.portfolio.actor import PortfolioActor
from services.portfolio.execution_quality import OrderJournal
from services.portfolio.config import PortfolioConfig
from services.portfolio.roundtrips import RoundTrip, in_exit_order

Payment = tuple[tuple[str, str, str], int, Decimal]  # (client, venue, symbol), funding time, amount paid


@dataclass(frozen=True)
class Window:
    since_ns: int | None = None
    until_ns: int | None = None

    def __post_init__(self) -> None:
        if self.since_ns is not None and self.until_ns is not None and self.since_ns >= self.until_ns:
            raise ValueError("--since must be before --until")

    def before(self, ns: int) -> bool:
        return self.since_ns is not None and ns < self.since_ns

    def after(self, ns: int) -> bool:
        return self.until_ns is not None and ns >= self.until_ns

    def holds(self, ns: int) -> bool:
        return not (self.before(ns) or self.after(ns))


@dataclass(frozen=True)
class ClientReport:
    client: str
    capital: Decimal  # the equity the window opened with (the configured capital without --since)
    fills: list[OrderFilled]
    trips: list[RoundTrip]
    equity: list[perf.EquityPoint]
    metrics: dict[str, Any]


def client_report(client: str, capital: Decimal, fills: Iterable[OrderFilled], trips: Iterable[RoundTrip],
                  window: Window = Window(), journal: OrderJournal | None = None,
                  funding: Iterable[Payment] = ()) -> ClientReport:
    """`fills` (in handling order), `trips` and `funding` (by time) are the client's own, as the store
    returns them; `journal` its order log (bosun.apps.order_log), for the strategies and the execution
    quality of the orders placed in the window (without it: every strategy unknown, no order)."""
    replay = PortfolioActor(SimClock(), InProcessBus(), PortfolioConfig(capital={client: capital}))
    opening = capital
    kept: list[OrderFilled] = []
    paid = Decimal(0)
    equity: list[perf.EquityPoint] = []
    for ts, fill, payment in _in_time(fills, funding):
        if window.after(ts):
            continue
        if fill is not None:
            replay.load((fill,))
        else:
            replay.load_funding((payment,))
        if window.before(ts):
            opening = replay.equity(client)
            continue
        if fill is not None:
            kept.append(fill)
        else:
            paid += payment[2]
        # Handling order may step back in time across venues: the curve's clock never does.
        ts = max(ts, equity[-1][0]) if equity else ts
        if equity and equity[-1][0] == ts:
            equity.pop()
        equity.append((ts, replay.equity(client)))
    start_ns = window.since_ns if window.since_ns is not None else (kept[0].ts_event if kept else None)
    if start_ns is not None and (not equity or equity[0][0] > start_ns):
        equity.insert(0, (start_ns, opening))
    closed = in_exit_order(t for t in trips if window.holds(t.exit_time_ns))
    metrics = perf.compute(closed, equity, opening, start_ns=start_ns)
    if paid:
        metrics["total_funding"] = paid  # paid (received: < 0), in total_pnl and the equity, as in a backtest
    metrics.update(analytics.compute(closed, journal or OrderJournal(), metrics,
                                     lambda r: window.holds(r.order.ts_event)))
    return ClientReport(client=client, capital=opening, fills=kept, trips=closed, equity=equity, metrics=metrics)


def _in_time(fills: Iterable[OrderFilled], funding: Iterable[Payment]
             ) -> Iterator[tuple[int, OrderFilled | None, Payment | None]]:
    """(time, fill, None) for each fill in handling order, and (time, None, payment) for each payment
    before the first fill done after its funding time: paid on what the fills up to then held."""
    payments = iter(funding)
    payment = next(payments, None)
    for fill in fills:
        while payment is not None and payment[1] < fill.ts_event:
            yield payment[1], None, payment
            payment = next(payments, None)
        yield fill.ts_event, fill, None
    while payment is not None:
        yield payment[1], None, payment
        payment = next(payments, None)
