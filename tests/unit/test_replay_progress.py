"""The replay progress `bosun up` shows: what a person reads, from samples handed in."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from bosun.apps.replay_progress import MAX_SAMPLES, ReplayProgress, count_events
from tests.datafiles import BTC_1M, data_dir, write_slice


def test_the_files_are_counted_as_ingest_reads_them(tmp_path: Path) -> None:
    replay = write_slice(data_dir() / BTC_1M, tmp_path / "BTCUSDT_1m.csv", 1234)
    assert count_events([replay], "binance") == (1234, "bars")
    assert count_events([replay, replay], "binance") == (2468, "bars")


def test_bars_done_speed_and_time_left() -> None:
    p = ReplayProgress()
    p.update(100.0, 0)
    assert p.line() == "replay 0 events (counting the files)"
    p.counted(50_000, "bars")
    p.update(101.0, 500)
    p.update(102.0, 1000)  # 500 bars/s: 49,000 to go take 98 s
    assert p.speed == 500.0 and p.left_s == 98.0
    assert p.line() == "replay 1,000/50,000 bars (2.0%), 500 bars/s, 1:38 left"


def test_the_speed_is_that_of_the_last_seconds_and_the_samples_are_bounded() -> None:
    p = ReplayProgress()
    p.counted(1_000_000, "bars")
    for s in range(36):  # 100/s for 20 s, then 1,000/s: the window (10 s) holds only the latter
        p.update(float(s), 100 * s if s <= 20 else 2000 + 1000 * (s - 20))
    assert p.speed == 1000.0
    for s in range(36, 36 + 3 * MAX_SAMPLES):
        p.update(float(s), 12_000 + s)
    assert len(p._samples) <= MAX_SAMPLES


def test_a_stalled_replay_says_so_and_a_finished_one_is_done() -> None:
    p = ReplayProgress()
    p.counted(10, "bars")
    p.update(0.0, 4)
    p.update(1.0, 4)
    assert p.line().endswith("0 bars/s, stalled")
    p.update(2.0, 12)  # a store holding more than the files: never past 100%
    assert p.line() == "replay 10/10 bars (100.0%), done"


def test_the_view_shows_the_bar_beside_its_figures_and_the_status_beneath() -> None:
    p = ReplayProgress()
    p.counted(100, "bars")
    p.update(0.0, 0)
    p.update(1.0, 25)
    console = Console(width=120, record=True, color_system=None)
    console.print(p.view("trading ON | fills 3", width=20))
    lines = console.export_text().splitlines()
    assert lines[0].startswith("━━━━━") and lines[0].endswith("replay 25/100 bars (25.0%), 25 bars/s, 0:03 left")
    assert lines[1] == "trading ON | fills 3"
