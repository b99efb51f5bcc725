"""`bosun backtest` with the book fill model on the real BTCUSDT capture: the venue fills resting
limit orders on the trades (and quotes) themselves, between the 5 s bars the strategy trades on."""

from __future__ import annotations

import bisect
from decimal import Decimal
from pathlib import Path

import pytest

from bench.bench_shadow_book import config, one_run
from bosun.apps import backtest
from services.ingest.files import read_market_file
from tests.datafiles import BTC_BOOK_TICKER, BTC_TRADES, data_file


@pytest.mark.parametrize("with_quotes", [False, True], ids=["trades", "trades+quotes"])
def test_resting_limits_fill_in_parts_within_the_volume_traded_at_or_through_them(tmp_path: Path,
                                                                                  with_quotes: bool) -> None:
    paths = [data_file(BTC_TRADES), *([data_file(BTC_BOOK_TICKER)] if with_quotes else [])]
    result = one_run(paths, "book", True, tmp_path / "book")
    again = one_run(paths, "book", True, tmp_path / "again")
    assert result.fills == again.fills  # repeatable
    simple = one_run([data_file(BTC_TRADES)], "simple", False, tmp_path / "simple")
    entries = [f for f in result.fills if f.reason == "signal"]
    assert entries and all(f.liquidity == "maker" for f in entries)
    by_order: dict[str, list] = {}
    for f in entries:
        by_order.setdefault(f.client_order_id, []).append(f)
    assert len(entries) > len(by_order), "0.05 BTC orders fill over several trades"
    assert {f.qty for f in simple.fills if f.reason == "signal"} <= {Decimal("0.05"), Decimal("0.1")}
    trades = list(read_market_file(data_file(BTC_TRADES)))
    times = [t.ts_event for t in trades]
    for coid, made in by_order.items():
        limit, buy = made[0].price, made[0].side == "buy"
        filled = Decimal(0)
        for f in made:
            filled += f.qty
            before = trades[:bisect.bisect_right(times, f.ts_event)]
            assert filled <= sum(t.qty for t in before if (t.price <= limit if buy else t.price >= limit)), (coid, f)


def test_without_a_book_model_venue_the_trades_stay_bars(tmp_path: Path) -> None:
    assert not backtest.fills_on_ticks(config("simple")) and backtest.fills_on_ticks(config("book"))
    assert backtest.holds_ticks([data_file(BTC_TRADES)]) and backtest.holds_ticks([data_file(BTC_BOOK_TICKER)])
