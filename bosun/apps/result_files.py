"""The files a run leaves behind, one function for `bosun backtest` and `bosun report`:
fills.csv, trades.csv, equity.csv and metrics.json (bosun.apps.outputs) and report.html
(bosun.apps.report), so a live record and a backtest read the same way."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from bosun.apps import outputs, report
from proto.events import OrderFilled
from services.portfolio.metrics import EquityPoint, RoundTripLike


def write(out_dir: Path, fills: Sequence[OrderFilled], trips: Sequence[RoundTripLike],
          equity: Sequence[EquityPoint], metrics: Mapping[str, Any], capital: Decimal, title: str) -> None:
    """Every output file into `out_dir` (created if missing)."""
    outputs.write_all(out_dir, fills, trips, equity, metrics)
    report.write(out_dir / "report.html", metrics, trips, equity, capital, title=title, fills=fills)
