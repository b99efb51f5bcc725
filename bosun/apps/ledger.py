"""One client's report from the live ledger: its stored fills and round trips in a time
window, and an equity curve recomputed from its fills.

Equity, with the bars of the client's markets (MARKET, read by `bosun report` when NATS is
there): marked as a backtest marks it, a point per bar time at the closes, after the fills done
before then, the client's fills replayed in handling order through the portfolio actor. The curve of
a paper run then equals its backtest's but where the backtest closes what is open at the end
(end_of_data), and so do drawdown, sharpe, sortino, calmar, cagr and exposure, up to that close.
Without bars, a point per fill time (the last fill at a time wins), each open position marked at
its market's last fill price of this client (never another client's): the trade metrics
(num_trades, win rates, averages, extremes, streaks, profit factor, expectancy, total_fees,
turnover, avg_holding_s) still read the same; the curve's figures come from a far sparser curve
and are not comparable with a backtest's.

Funding a perpetual position paid is in the equity as stored (due before the first bar after its
funding time; without bars, a point of its own), and its sum in metrics.json's total_funding, as
a backtest has them.

Window [since, until): the fills in it and the round trips that closed in it. The fills before
it are replayed too, and the curve starts at the equity they leave: the window's capital, which
its total_pnl and returns are measured from."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from bosun.runtime.clock import SimClock
from bosun.runtime.inproc import InProcessBus
from proto.events import Bar, OrderFilled, PriceSnapshot
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
                  funding: Iterable[Payment] = (), bars: Iterable[Bar] = ()) -> ClientReport:
    """`fills` (in handling order), `trips` and `funding` (by time) are the client's own, as the store
    returns them; `journal` its order log (bosun.apps.order_log), for the strategies and the execution
    quality of the orders placed in the window (without it: every strategy unknown, no order); `bars`
    those of its markets in time order (MARKET), to mark the equity as a backtest does."""
    # Closed at the end, so the replayed book goes when the report is made (InProcessBus.close).
    with closing(InProcessBus()) as bus:
        replay = bus.attach(PortfolioActor(SimClock(), bus, PortfolioConfig(capital={client: capital})))
        opening = capital
        kept: list[OrderFilled] = []
        paid = Decimal(0)
        first_bar: int | None = None  # the first bar's open in the window
        equity: list[perf.EquityPoint] = []
        for ts, item, point in _in_time(fills, funding, bars):
            if window.after(ts):
                continue
            kind = type(item)
            if kind is OrderFilled:
                replay.load((item,))  # type: ignore[arg-type]
            elif kind is Bar:
                bus.publish(PriceSnapshot(id=item.id, ts_event=ts, venue=item.venue, symbol=item.symbol,  # type: ignore
                                          price=item.close))  # type: ignore[union-attr]
                bus.drain()
            else:
                replay.load_funding((item,))  # type: ignore[arg-type]
            if window.before(ts):
                opening = replay.equity(client)
                continue
            if kind is OrderFilled:
                kept.append(item)  # type: ignore[arg-type]
            elif kind is Bar:
                first_bar = item.ts_open if first_bar is None else first_bar  # type: ignore[union-attr]
            else:
                paid += item[2]  # type: ignore[index]
            if not point:
                continue
            # Handling order may step back in time across venues: the curve's clock never does.
            ts = max(ts, equity[-1][0]) if equity else ts
            if equity and equity[-1][0] == ts:
                equity.pop()
            equity.append((ts, replay.equity(client)))
    start_ns = window.since_ns if window.since_ns is not None else (
        first_bar if first_bar is not None else kept[0].ts_event if kept else None)
    # The window's opening equity as its first point; a whole record marked at bars starts at the first
    # bar's close, as a backtest's curve does.
    if start_ns is not None and (not equity or equity[0][0] > start_ns) and (
            first_bar is None or window.since_ns is not None):
        equity.insert(0, (start_ns, opening))
    closed = in_exit_order(t for t in trips if window.holds(t.exit_time_ns))
    metrics = perf.compute(closed, equity, opening, start_ns=start_ns)
    if paid:
        metrics["total_funding"] = paid  # paid (received: < 0), in total_pnl and the equity, as in a backtest
    metrics.update(analytics.compute(closed, journal or OrderJournal(), metrics,
                                     lambda r: window.holds(r.order.ts_event)))
    return ClientReport(client=client, capital=opening, fills=kept, trips=closed, equity=equity, metrics=metrics)


def _in_time(fills: Iterable[OrderFilled], funding: Iterable[Payment], bars: Iterable[Bar]
             ) -> Iterator[tuple[int, OrderFilled | Payment | Bar, bool]]:
    """(time, event, whether the equity gets a point there): each bar after the fills done and the
    payments due before its close, as a backtest marks it (a point per bar time: a fill at the next
    bar's open, the close's time, counts from the next bar on, as it does there); each fill
    in handling order, and each payment before the first fill done after its funding time (paid on
    what the fills up to then held). Without bars, or after the last, each fill and payment is a point."""
    payments, rest = iter(funding), iter(fills)
    payment, fill = next(payments, None), next(rest, None)

    def due(until: int | None) -> Iterator[tuple[int, OrderFilled | Payment, bool]]:
        """The fills and payments before a bar closing at `until` (None: all of them)."""
        nonlocal payment, fill
        point = until is None
        while True:
            if payment is not None and (until is None or payment[1] < until) and (
                    fill is None or payment[1] < fill.ts_event):
                yield payment[1], payment, point
                payment = next(payments, None)
            elif fill is not None and (until is None or fill.ts_event < until):
                yield fill.ts_event, fill, point
                fill = next(rest, None)
            else:
                return

    for bar in bars:
        yield from due(bar.ts_event)
        yield bar.ts_event, bar, True
    yield from due(None)
