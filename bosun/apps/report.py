"""report.html: one self-contained page (inline SVG and CSS, no scripts, nothing fetched)
with the equity and drawdown curves, PnL per day (or month), positions over time, the
distribution of round-trip PnL, the metrics, breakdowns per strategy, venue, symbol and exit
reason, execution quality, and the trade list."""

from __future__ import annotations

import calendar
import html
import math
import time
from collections.abc import Mapping, Sequence
from decimal import Decimal
from operator import attrgetter
from pathlib import Path
from typing import Any

from bosun.apps.outputs import IsoTime, short
from proto.events import OrderFilled
from services.portfolio.metrics import EquityPoint, RoundTripLike, breakdown, daily_closes

MAX_POINTS = 1200  # curve vertices: min and max of each bucket keep the shape of long series
MAX_DAILY_BARS = 400  # PnL per day up to this many days, per month beyond
HISTOGRAM_BINS = 30
SERIES_COLORS = ("#2f5fd0", "#d07a2f", "#2f9e6b", "#8a4fd0", "#c43d7a", "#5b6475")
WIDTH, HEIGHT, PAD_L, PAD_B, PAD_T, PAD_R = 960, 260, 84, 28, 12, 12

# (key, label, kind): kind picks the formatting
METRIC_ROWS: tuple[tuple[str, str, str], ...] = (
    ("total_pnl", "Total PnL", "money"),
    ("total_return_pct", "Total return", "pct"),
    ("cagr_pct", "CAGR", "pct"),
    ("num_trades", "Round trips", "int"),
    ("win_rate", "Win rate", "ratio"),
    ("win_rate_long", "Win rate, long", "ratio"),
    ("win_rate_short", "Win rate, short", "ratio"),
    ("avg_win", "Average win", "money"),
    ("avg_loss", "Average loss", "money"),
    ("largest_win", "Largest win", "money"),
    ("largest_loss", "Largest loss", "money"),
    ("profit_factor", "Profit factor", "num"),
    ("expectancy", "Expectancy per trade", "money"),
    ("sharpe", "Sharpe (daily, 365)", "num"),
    ("sortino", "Sortino (daily, 365)", "num"),
    ("calmar", "Calmar", "num"),
    ("max_drawdown", "Max drawdown", "money"),
    ("max_drawdown_pct", "Max drawdown %", "pct"),
    ("max_drawdown_duration_s", "Longest drawdown", "duration"),
    ("exposure_pct", "Exposure", "pct"),
    ("avg_holding_s", "Average holding time", "duration"),
    ("max_consecutive_wins", "Most wins in a row", "int"),
    ("max_consecutive_losses", "Most losses in a row", "int"),
    ("total_fees", "Fees", "money"),
    ("turnover", "Turnover", "money"),
)

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1d2330;margin:0;background:#f6f7f9}
main{max-width:1000px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px}
.sub{color:#5b6475;margin:0 0 16px}
.card{background:#fff;border:1px solid #e1e4ea;border-radius:8px;padding:12px 16px;margin-bottom:12px}
.kpis{display:grid;grid-template-columns:repeat(4,1fr);gap:12px}
.kpi .v{font-size:20px;font-weight:600}.kpi .l{color:#5b6475;font-size:12px}
table{border-collapse:collapse;width:100%}
th,td{padding:4px 8px;border-bottom:1px solid #eceef2;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left}
th{font-weight:600;color:#5b6475;background:#fafbfc;position:sticky;top:0}
.pos{color:#127a3a}.neg{color:#b3261e}
.metrics{columns:2;column-gap:32px}.metrics table{break-inside:avoid}
.scroll{max-height:520px;overflow:auto}
svg text{font-size:11px;fill:#5b6475}
.legend span{display:inline-block;margin-right:16px;font-size:12px;color:#5b6475}
.legend i{display:inline-block;width:12px;height:3px;margin-right:6px;vertical-align:middle}
"""

# Execution quality rows: (key, label, kind)
EXECUTION_ROWS: tuple[tuple[str, str, str], ...] = (
    ("orders", "Orders", "int"), ("order_success_rate", "Success", "ratio"), ("fill_ratio", "Fill ratio", "ratio"),
    ("slippage_bps", "Slippage (bps)", "num"), ("slippage_cost", "Slippage cost", "money"),
)


def render(metrics: Mapping[str, Any], trips: Sequence[RoundTripLike], equity: Sequence[EquityPoint],
           capital: Decimal, title: str, fills: Sequence[OrderFilled] = ()) -> str:
    iso = IsoTime()
    span = f"{iso(equity[0][0])} to {iso(equity[-1][0])}, {len(equity):,} marks" if equity else "no data"
    kpis = "".join(
        f'<div class="card kpi"><div class="v {css}">{_fmt(metrics.get(k), kind)}</div>'
        f'<div class="l">{label}</div></div>'
        for k, label, kind, css in (
            ("total_pnl", "Total PnL", "money", _sign_class(metrics.get("total_pnl"))),
            ("total_return_pct", "Return", "pct", _sign_class(metrics.get("total_return_pct"))),
            ("max_drawdown_pct", "Max drawdown", "pct", "neg" if metrics.get("max_drawdown_pct") else ""),
            ("sharpe", "Sharpe", "num", _sign_class(metrics.get("sharpe")))))
    rows = "".join(f"<tr><td>{label}</td><td>{_fmt(metrics.get(k), kind)}</td></tr>"
                   for k, label, kind in METRIC_ROWS)
    period, pnl_bars = _pnl_per_period(equity, capital)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{html.escape(title)}</title><style>{CSS}</style></head>
<body><main>
<h1>{html.escape(title)}</h1>
<p class="sub">{span}; starting capital {_fmt(capital, "money")}</p>
<div class="kpis">{kpis}</div>
<h2>Equity</h2><div class="card">{_equity_svg(equity, capital)}</div>
<h2>Drawdown</h2><div class="card">{_drawdown_svg(equity, capital)}</div>
<h2>PnL per {period}</h2><div class="card">{_bars_svg(pnl_bars, period)}</div>
<h2>Positions over time, at fill prices</h2><div class="card">{_positions_svg(fills)}</div>
<h2>Round-trip PnL distribution</h2><div class="card">{_histogram_svg([float(t.pnl) for t in trips])}</div>
<h2>Metrics</h2><div class="card metrics"><table>{rows}</table></div>
<h2>By strategy</h2><div class="card">{_groups_table(metrics.get("by_strategy", {}), "Strategy")}</div>
<h2>By venue</h2><div class="card">{_groups_table(_groups(metrics, trips, "by_venue", "venue"), "Venue")}</div>
<h2>By symbol</h2><div class="card">{_groups_table(_groups(metrics, trips, "by_symbol", "symbol"), "Symbol")}</div>
<h2>By exit reason</h2><div class="card">{_groups_table(_groups(metrics, trips, None, "exit_reason"), "Exit reason")}</div>
<h2>Execution quality</h2><div class="card">{_execution_table(metrics.get("execution"))}</div>
<h2>Trades ({len(trips):,})</h2><div class="card scroll">{_trades_table(trips)}</div>
</main></body></html>
"""


def write(path: Path, metrics: Mapping[str, Any], trips: Sequence[RoundTripLike],
          equity: Sequence[EquityPoint], capital: Decimal, title: str = "bosun backtest",
          fills: Sequence[OrderFilled] = ()) -> None:
    path.write_text(render(metrics, trips, equity, capital, title, fills), encoding="utf-8")


# --- curves


def _downsample(points: Sequence[tuple[int, float]]) -> list[tuple[int, float]]:
    """At most ~MAX_POINTS vertices: per bucket, its min and max in time order."""
    if len(points) <= MAX_POINTS:
        return list(points)
    size = math.ceil(len(points) / (MAX_POINTS // 2))
    out: list[tuple[int, float]] = []
    for i in range(0, len(points), size):
        bucket = points[i:i + size]
        lo = min(bucket, key=lambda p: p[1])
        hi = max(bucket, key=lambda p: p[1])
        out.extend(sorted({lo, hi}))
    return out


def _polyline_svg(points: Sequence[tuple[int, float]], color: str, fill_to: float | None,
                  value_fmt: str, baseline: float | None = None) -> str:
    if len(points) < 2:
        return '<p class="sub">not enough data for a curve</p>'
    pts = _downsample(points)
    t0, t1 = pts[0][0], pts[-1][0]
    ys = [p[1] for p in pts] + ([baseline] if baseline is not None else []) + ([fill_to] if fill_to is not None else [])
    frame = _Frame(min(ys), max(ys), value_fmt)
    y = frame.y

    def x(t: int) -> float:
        return PAD_L + (t - t0) / (t1 - t0 or 1) * frame.w

    line = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in pts)
    parts = frame.open()
    iso = IsoTime()
    for i in range(4):  # dates along the bottom
        t = t0 + (t1 - t0) * i // 3
        parts.append(frame.label(x(t), iso(t)[:10], i))
    if baseline is not None:
        parts.append(f'<line x1="{PAD_L}" x2="{WIDTH - PAD_R}" y1="{y(baseline):.1f}" y2="{y(baseline):.1f}" '
                     f'stroke="#9aa3b2" stroke-dasharray="4 4"/>')
    if fill_to is not None:
        parts.append(f'<polygon points="{x(t0):.1f},{y(fill_to):.1f} {line} {x(t1):.1f},{y(fill_to):.1f}" '
                     f'fill="{color}" fill-opacity="0.15"/>')
    parts.append(f'<polyline points="{line}" fill="none" stroke="{color}" stroke-width="1.5"/></svg>')
    return "".join(parts)


def _equity_svg(equity: Sequence[EquityPoint], capital: Decimal) -> str:
    return _polyline_svg([(t, float(e)) for t, e in equity], "#2f5fd0", None, "{:,.0f}", float(capital))


def _drawdown_svg(equity: Sequence[EquityPoint], capital: Decimal) -> str:
    """Percent below the running peak (the peak starts at the capital)."""
    peak = capital
    points = []
    for t, e in equity:
        peak = max(peak, e)
        points.append((t, -float((peak - e) / peak * 100) if peak > 0 else 0.0))
    return _polyline_svg(points, "#b3261e", 0.0, "{:.1f}%")


def _pnl_per_period(equity: Sequence[EquityPoint], capital: Decimal) -> tuple[str, list[tuple[int, float]]]:
    """("day", [(day start, equity change over the day)]) from the end-of-day equity, the first day
    from the capital; per calendar month when there are more than MAX_DAILY_BARS days."""
    closes = daily_closes(equity)
    period = "day"
    if len(closes) > MAX_DAILY_BARS:
        period, by_month = "month", {}
        for day, e in closes:  # the month's last close wins
            by_month[_month_start(day)] = e
        closes = list(by_month.items())
    out, prev = [], capital
    for start, e in closes:
        out.append((start, float(e - prev)))
        prev = e
    return period, out


def _month_start(ns: int) -> int:
    tm = time.gmtime(ns // 1_000_000_000)
    return calendar.timegm((tm.tm_year, tm.tm_mon, 1, 0, 0, 0)) * 1_000_000_000


class _Frame:
    """A plot area with its value axis (lo..hi) and horizontal grid; x is left to the chart."""

    def __init__(self, lo: float, hi: float, value_fmt: str) -> None:
        if hi == lo:
            hi, lo = hi + 1, lo - 1
        self.lo, self.hi, self.value_fmt = lo, hi, value_fmt
        self.w, self.h = WIDTH - PAD_L - PAD_R, HEIGHT - PAD_T - PAD_B

    def y(self, v: float) -> float:
        return PAD_T + (self.hi - v) / (self.hi - self.lo) * self.h

    def open(self) -> list[str]:
        parts = [f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" role="img" xmlns="http://www.w3.org/2000/svg">']
        for i in range(5):
            v = self.lo + (self.hi - self.lo) * i / 4
            parts.append(f'<line x1="{PAD_L}" x2="{WIDTH - PAD_R}" y1="{self.y(v):.1f}" y2="{self.y(v):.1f}" '
                         f'stroke="#eceef2"/><text x="{PAD_L - 6}" y="{self.y(v) + 4:.1f}" '
                         f'text-anchor="end">{self.value_fmt.format(v)}</text>')
        return parts

    def label(self, x: float, text: str, i: int) -> str:
        anchor = ("start", "middle", "middle", "end")[i]
        return f'<text x="{x:.1f}" y="{HEIGHT - 8}" text-anchor="{anchor}">{html.escape(text)}</text>'


def _bars_svg(bars: Sequence[tuple[int, float]], period: str) -> str:
    """One bar per period, green up, red down, from zero."""
    if not bars:
        return '<p class="sub">no data</p>'
    values = [v for _, v in bars]
    frame = _Frame(min(0.0, *values), max(0.0, *values), "{:,.0f}")
    parts = frame.open()
    step = frame.w / len(bars)
    zero = frame.y(0.0)
    for i, (_, v) in enumerate(bars):
        top, bottom = sorted((frame.y(v), zero))
        parts.append(f'<rect x="{PAD_L + i * step + step * 0.1:.1f}" y="{top:.1f}" width="{max(step * 0.8, 0.5):.1f}" '
                     f'height="{max(bottom - top, 0.5):.1f}" fill="{"#127a3a" if v >= 0 else "#b3261e"}"/>')
    iso = IsoTime()
    for i in range(4):
        k = (len(bars) - 1) * i // 3
        parts.append(frame.label(PAD_L + (k + 0.5) * step, iso(bars[k][0])[:7 if period == "month" else 10], i))
    parts.append(f'<line x1="{PAD_L}" x2="{WIDTH - PAD_R}" y1="{zero:.1f}" y2="{zero:.1f}" stroke="#9aa3b2"/></svg>')
    return "".join(parts)


def _positions_svg(fills: Sequence[OrderFilled]) -> str:
    """The signed position of each venue.symbol after each fill, as steps, valued at that fill's price
    (quote currency, so that markets of different sizes share one axis)."""
    series: dict[str, list[tuple[int, float]]] = {}
    held: dict[str, Decimal] = {}
    for f in fills:
        market = f"{f.venue}.{f.symbol}"
        qty = held[market] = held.get(market, Decimal(0)) + (f.qty if f.side == "buy" else -f.qty)
        points = series.setdefault(market, [(f.ts_event, 0.0)])
        points.append((f.ts_event, points[-1][1]))  # the step: the old position until the fill
        points.append((f.ts_event, float(qty) * float(f.price)))  # a chart's precision
    if not series:
        return '<p class="sub">no fills</p>'
    t0 = min(p[0][0] for p in series.values())
    t1 = max(p[-1][0] for p in series.values())
    values = [v for p in series.values() for _, v in p]
    frame = _Frame(min(values), max(values), "{:,.0f}")
    parts = frame.open()

    def x(t: int) -> float:
        return PAD_L + (t - t0) / (t1 - t0 or 1) * frame.w

    legend = []
    for n, (market, points) in enumerate(sorted(series.items())):
        color = SERIES_COLORS[n % len(SERIES_COLORS)]
        line = " ".join(f"{x(t):.1f},{frame.y(v):.1f}" for t, v in _downsample(points))
        parts.append(f'<polyline points="{line}" fill="none" stroke="{color}" stroke-width="1.2"/>')
        legend.append(f'<span><i style="background:{color}"></i>{html.escape(market)}</span>')
    iso = IsoTime()
    for i in range(4):
        t = t0 + (t1 - t0) * i // 3
        parts.append(frame.label(x(t), iso(t)[:10], i))
    parts.append("</svg>")
    return f'<div class="legend">{"".join(legend)}</div>' + "".join(parts)


def _histogram_svg(pnls: Sequence[float]) -> str:
    """Round trips per PnL bin; bins left of zero red, right green."""
    if not pnls:
        return '<p class="sub">no round trips</p>'
    lo, hi = min(pnls), max(pnls)
    width = (hi - lo) / HISTOGRAM_BINS or 1.0
    counts = [0] * HISTOGRAM_BINS
    for p in pnls:
        counts[min(int((p - lo) / width), HISTOGRAM_BINS - 1)] += 1
    frame = _Frame(0.0, float(max(counts)), "{:,.0f}")
    parts = frame.open()
    step = frame.w / HISTOGRAM_BINS
    for i, c in enumerate(counts):
        mid = lo + (i + 0.5) * width
        top = frame.y(c)
        parts.append(f'<rect x="{PAD_L + i * step + 1:.1f}" y="{top:.1f}" width="{step - 2:.1f}" '
                     f'height="{frame.y(0) - top:.1f}" fill="{"#127a3a" if mid >= 0 else "#b3261e"}" '
                     f'fill-opacity="0.8"><title>{c} round trips around {mid:,.2f}</title></rect>')
    for i in range(4):
        v = lo + (hi - lo) * i / 3
        parts.append(frame.label(PAD_L + (v - lo) / ((hi - lo) or 1) * frame.w, f"{v:,.2f}", i))
    parts.append("</svg>")
    return "".join(parts)


# --- tables


def _groups(metrics: Mapping[str, Any], trips: Sequence[RoundTripLike], computed: str | None,
            attribute: str) -> Mapping[str, Mapping[str, Any]]:
    """The breakdown `metrics` holds under `computed`, else computed here from the trips' `attribute`
    (the whole run's figures reused for a group holding every trip)."""
    if computed is not None and computed in metrics:
        return metrics[computed]
    return breakdown(trips, attrgetter(attribute), metrics if "num_trades" in metrics else None)


def _groups_table(groups: Mapping[str, Mapping[str, Any]], label: str) -> str:
    if not groups:
        return '<p class="sub">no round trips</p>'
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{g['num_trades']:,}</td><td>{_fmt(g['win_rate'], 'ratio')}</td>"
        f"<td class=\"{_sign_class(g['pnl'])}\">{_fmt(g['pnl'], 'money')}</td><td>{_fmt(g['fees'], 'money')}</td>"
        f"<td>{_fmt(g['expectancy'], 'money')}</td><td>{_fmt(g['profit_factor'], 'num')}</td></tr>"
        for name, g in groups.items())
    return (f"<table><tr><th>{label}</th><th>Trades</th><th>Win rate</th><th>PnL</th><th>Fees</th>"
            f"<th>Per trade</th><th>Profit factor</th></tr>{rows}</table>")


def _execution_table(execution: Mapping[str, Any] | None) -> str:
    """Overall, per venue and per order reason (services.portfolio.execution_quality)."""
    if not execution or not execution["orders"]:
        return '<p class="sub">no orders in the order log</p>'
    groups = [("all orders", execution)]
    groups += [(f"venue {name}", q) for name, q in execution.get("by_venue", {}).items()]
    groups += [(f"reason {name}", q) for name, q in execution.get("by_reason", {}).items()]

    def latency(spread: Mapping[str, float] | None) -> str:
        return "–" if spread is None else f"{spread['p50']:,.0f} / {spread['p95']:,.0f} / {spread['max']:,.0f}"

    rows = "".join(
        f"<tr><td>{html.escape(name)}</td>" + "".join(f"<td>{_fmt(q[k], kind)}</td>" for k, _, kind in EXECUTION_ROWS)
        + f"<td>{latency(q['signal_to_fill_ms'])}</td><td>{latency(q['order_to_ack_ms'])}</td></tr>"
        for name, q in groups)
    head = "".join(f"<th>{label}</th>" for _, label, _ in EXECUTION_ROWS)
    return (f"<table><tr><th></th>{head}<th>Signal to fill, ms</th><th>Order to ack, ms</th></tr>{rows}</table>"
            '<p class="sub">Slippage against the price each order was decided at, positive a cost; latencies '
            "p50 / p95 / max, in market time for a backtest or paper run.</p>")


def _trades_table(trips: Sequence[RoundTripLike]) -> str:
    if not trips:
        return '<p class="sub">no round trips</p>'
    iso = IsoTime()
    rows = "".join(
        f"<tr><td>{iso(t.entry_time_ns)}</td><td>{iso(t.exit_time_ns)}</td><td>{html.escape(t.symbol)}</td>"
        f"<td>{t.side}</td><td>{short(t.qty)}</td><td>{short(t.entry_price)}</td><td>{short(t.exit_price)}</td>"
        f"<td>{_fmt(t.fees, 'money')}</td><td class=\"{_sign_class(t.pnl)}\">{_fmt(t.pnl, 'money')}</td>"
        f"<td>{_fmt(t.return_pct, 'pct')}</td><td>{_fmt(t.duration_s, 'duration')}</td>"
        f"<td>{html.escape(t.exit_reason)}</td></tr>"
        for t in trips)
    return ("<table><tr><th>Entry</th><th>Exit</th><th>Symbol</th><th>Side</th><th>Qty</th><th>Entry price</th>"
            "<th>Exit price</th><th>Fees</th><th>PnL</th><th>Return</th><th>Held</th><th>Exit reason</th></tr>"
            f"{rows}</table>")


# --- formatting


def _sign_class(value: Any) -> str:
    if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        return "pos" if value > 0 else "neg" if value < 0 else ""
    return ""


def _fmt(value: Any, kind: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if kind == "int":
        return f"{value:,}"
    if kind == "money":
        return f"{Decimal(value):,.2f}"
    if kind == "pct":
        return f"{float(value):,.2f}%"
    if kind == "ratio":
        return f"{float(value) * 100:.1f}%"
    if kind == "duration":
        return _duration(float(value))
    return f"{float(value):,.3f}"


def _duration(seconds: float) -> str:
    minutes, s = divmod(int(round(seconds)), 60)
    hours, m = divmod(minutes, 60)
    days, h = divmod(hours, 24)
    if days:
        return f"{days}d {h}h"
    if hours:
        return f"{h}h {m:02d}m"
    return f"{m}m {s:02d}s"
