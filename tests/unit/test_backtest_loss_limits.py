"""The backtest runs risk's loss limits over real BTCUSDT 1m bars: once the day's loss reaches
max_daily_loss no fill adds exposure until the next UTC day, and once max_drawdown trips none
does at all. The trips are read from risk's status at the end of the run."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from bosun.apps import backtest
from bosun.model.exposure import reduces
from bosun.model.positions import signed
from proto.events import OrderFilled
from services.risk.config import LimitsConfig
from tests.datafiles import BTC_1M, data_file, write_slice

D = Decimal
DAYS = 10
NS_PER_DAY = 86_400 * 1_000_000_000


@pytest.fixture(scope="module")
def ten_days(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = data_file(BTC_1M)
    return write_slice(src, tmp_path_factory.mktemp("data") / src.name.removesuffix(".gz"), DAYS * 1440)


def run(path: Path, **limits: object) -> backtest.Result:
    markets, bars = backtest.open_data([path])
    config = backtest.config_from_flags(backtest.Flags(params={"fast": 10, "slow": 30}), markets)
    client = msgspec.structs.replace(config.clients[0], risk=LimitsConfig(max_price_age_s=None, **limits))
    return backtest.run(msgspec.structs.replace(config, clients=[client]), bars)


def trip_times(result: backtest.Result, limit: str) -> list[int]:
    trips = result.risk["limit_state"][backtest.CLIENT][limit]["trips"]
    return [int(datetime.strptime(t["at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()) * 10**9
            for t in trips]


def adding_fills(fills: list[OrderFilled]) -> list[OrderFilled]:
    """The fills that added exposure: a larger position on the same side, or a flip."""
    position, adding = D(0), []
    for fill in fills:
        after = position + signed(fill.side, fill.qty)
        if not reduces(after, position):
            adding.append(fill)
        position = after
    return adding


def test_after_the_daily_loss_trips_no_fill_adds_exposure_until_the_next_utc_day(ten_days: Path) -> None:
    free = adding_fills(run(ten_days).fills)  # the same run without the limit
    result = run(ten_days, max_daily_loss=D(40))
    trips = trip_times(result, "max_daily_loss")
    assert len(trips) >= 3 and len({t // NS_PER_DAY for t in trips}) == len(trips)  # several days, once each
    assert result.risk["breaches_by_limit"]["max_daily_loss"] > 0
    adding = adding_fills(result.fills)
    for trip in trips:
        day_end = (trip // NS_PER_DAY + 1) * NS_PER_DAY
        assert not [f for f in adding if trip < f.ts_event < day_end], "a fill added exposure after the trip"
        assert [f for f in free if trip < f.ts_event < day_end], "without the limit this day had more entries"
    assert [f for f in adding if f.ts_event // NS_PER_DAY > min(trips) // NS_PER_DAY], "trading resumes next day"


def test_after_the_drawdown_trips_no_fill_adds_exposure_at_all(ten_days: Path) -> None:
    result = run(ten_days, max_drawdown=D(100))
    (trip,) = trip_times(result, "max_drawdown")  # the peak goes on rising after it: it trips once
    adding = adding_fills(result.fills)
    assert adding and all(f.ts_event <= trip for f in adding)
    assert [f for f in adding_fills(run(ten_days).fills) if f.ts_event > trip], "without it, entries go on"
    assert result.risk["limit_state"][backtest.CLIENT]["max_drawdown"]["tripped"] is True
    assert sum(signed(f.side, f.qty) for f in result.fills) == 0  # reductions still pass: flat at the end
