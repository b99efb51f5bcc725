"""`bosun backtest` with the book fill model on the real BTCUSDT capture: the venue fills resting
limit orders on the trades (and quotes) themselves, between the 5 s bars the strategy trades on."""

from __future__ import annotations

import bisect
from decimal import Decimal
from functools import partial
from pathlib import Path

import pytest

import msgspec

from bench.bench_shadow_book import INTERVAL, config, one_run
from bosun.apps import backtest, outputs
from proto.events import Bar, Quote, Trade
from services.ingest.bars import trades_and_bars
from services.ingest.files import read_market_file
from services.ingest.replay import merge_by_time
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
    # What traded at or through each limit, and (with quotes) what an opposite best that reached it showed.
    ticks = list(backtest.open_ticks(paths[:1]) if not with_quotes else merge_by_time(
        [read_market_file(p) for p in paths]))
    times = [t.ts_event for t in ticks]
    for coid, made in by_order.items():
        limit, buy = made[0].price, made[0].side == "buy"
        filled = Decimal(0)
        for f in made:
            filled += f.qty
            before = ticks[:bisect.bisect_right(times, f.ts_event)]
            assert filled <= sum(map(partial(reaching, limit, buy), before)), (coid, f)


def reaching(limit: Decimal, buy: bool, md: Bar | Trade | Quote) -> Decimal:
    """What `md` offers a resting limit: a trade at or through it, a quote whose opposite best reaches it."""
    if type(md) is Trade:
        return md.qty if (md.price <= limit if buy else md.price >= limit) else Decimal(0)
    if type(md) is Quote:
        return (md.ask_qty if md.ask <= limit else Decimal(0)) if buy else (md.bid_qty if md.bid >= limit else Decimal(0))
    return Decimal(0)


@pytest.mark.parametrize("venue", [
    {},
    {"submit_latency_ms": Decimal(40), "cancel_latency_ms": Decimal(25), "latency_jitter_ms": Decimal(30)},
    {"entry": "market", "slippage_bps": Decimal(2)},
], ids=["limits", "latency", "market"])
def test_quotes_skipped_while_the_venue_is_quiet_change_no_fill(tmp_path: Path, venue: dict) -> None:
    """The backtest hands the venue a run of quotes only where it has something working: the same
    outputs as every quote one by one (brackets too: their stops watch the quotes)."""
    cfg = config("book")
    cfg = msgspec.structs.replace(cfg, clients=[msgspec.structs.replace(
        c, venues={"binance": msgspec.structs.replace(c.venues["binance"], **venue)}) for c in cfg.clients],
        strategies=[msgspec.structs.replace(s, stop_k=Decimal(2), take_k=Decimal(3)) for s in cfg.strategies])
    paths = [data_file(BTC_TRADES), data_file(BTC_BOOK_TICKER)]
    runs = backtest.open_ticks(paths, INTERVAL)
    one_by_one = merge_by_time([trades_and_bars(read_market_file(paths[0]), INTERVAL),  # type: ignore[arg-type]
                                read_market_file(paths[1])])
    fast, slow = backtest.run(cfg, runs, True), backtest.run(cfg, one_by_one, True)
    assert any(type(e) is tuple for e in backtest.open_ticks(paths, INTERVAL)), "quotes in runs"
    assert len(fast.fills) > 6 and {f.reason for f in fast.fills} > {"signal"}
    assert (fast.fills, fast.trips, fast.equity) == (slow.fills, slow.trips, slow.equity)
    outputs.write_all(tmp_path / "fast", fast.fills, fast.trips, fast.equity, fast.metrics)
    outputs.write_all(tmp_path / "slow", slow.fills, slow.trips, slow.equity, slow.metrics)
    for f in (tmp_path / "slow").iterdir():
        assert (tmp_path / "fast" / f.name).read_bytes() == f.read_bytes(), f.name


def test_without_a_book_model_venue_the_trades_stay_bars(tmp_path: Path) -> None:
    assert not backtest.fills_on_ticks(config("simple")) and backtest.fills_on_ticks(config("book"))
    assert backtest.holds_ticks([data_file(BTC_TRADES)]) and backtest.holds_ticks([data_file(BTC_BOOK_TICKER)])
