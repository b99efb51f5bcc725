"""Market-data readers, trade-to-bar aggregation, replay and the source choice, on real
Binance files."""

from __future__ import annotations

import gzip
from decimal import Decimal
from itertools import islice
from pathlib import Path

import pytest

from services.ingest.config import IngestConfig
from proto.events import Bar, Trade
from services.ingest.bars import bars_from_trades, format_interval, parse_interval
from services.ingest.files import DataError, read_klines, read_market_file, read_trades
from services.ingest.newest import Stored
from services.ingest.pacing import YIELD_EVERY, replay
from services.ingest.replay import merge_by_time
from services.ingest.source import market_events, websocket_url
from tests.datafiles import (BTC_1M, BTC_TRADES, ETH_1M, LINK_USDM_12COL, XRPETH_1M, XRPETH_AGGTRADES,
                             data_file, write_slice)

BTC_1H = "binance_spot_klines_1h/binance_spot_BTCUSDT_1h_2017-08-17_2024-01-01.csv.gz"
MINUTE = 60_000_000_000


def text_lines(path: Path) -> list[str]:
    with gzip.open(path, "rt") as f:
        return f.read().splitlines()


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


# ----------------------------------------------------------------------------- klines


def test_six_column_btc_1m_reads_every_bar_with_exact_values() -> None:
    bars = list(read_klines(data_file(BTC_1M)))
    assert len(bars) == 50_000
    first, last = bars[0], bars[-1]
    assert first == Bar(id="binance.BTCUSDT.1m.1727751600000000000", ts_event=1727751600000000000 + MINUTE,
                        venue="binance", symbol="BTCUSDT", interval="1m", ts_open=1727751600000000000,
                        open=Decimal("63443.76"), high=Decimal("63460.0"), low=Decimal("63440.0"),
                        close=Decimal("63440.01"), volume=Decimal("14.63212"))
    assert (last.ts_open, last.open, last.high, last.low, last.close, last.volume) == (
        1730751540000000000, Decimal("67730.01"), Decimal("67744.0"), Decimal("67726.48"),
        Decimal("67726.48"), Decimal("6.7555"))
    assert all(b.ts_open - a.ts_open == MINUTE for a, b in zip(bars, bars[1:]))


def test_twelve_column_usdm_file_with_header() -> None:
    bars = list(read_klines(data_file(LINK_USDM_12COL)))
    assert len(bars) == 40_320
    assert bars[0].symbol == "LINKUSDT" and bars[0].interval == "1m"
    assert (bars[0].ts_open, bars[0].open, bars[0].high, bars[0].low, bars[0].close, bars[0].volume) == (
        1675209600000000000, Decimal("6.949"), Decimal("6.959"), Decimal("6.947"), Decimal("6.957"),
        Decimal("30020.25"))
    # close_time in the file is open + 59999 ms: the bar closes at open + 1m.
    assert bars[-1].ts_event == (1677628799999 + 1) * 1_000_000


def test_twelve_column_file_without_header_plain_text(tmp_path: Path) -> None:
    source = data_file(LINK_USDM_12COL)
    rows = text_lines(source)[1:301]
    assert rows[0].count(",") == 11
    plain = write(tmp_path / "LINKUSDT-1m-2023-02.csv", rows)
    assert list(read_klines(plain)) == list(islice(read_klines(source), 300))


def test_plain_file_symbol_from_argument_and_interval_from_first_two_bars(tmp_path: Path) -> None:
    source = data_file(BTC_1M)
    plain = write(tmp_path / "sample.csv", text_lines(source)[:1001])
    bars = list(read_klines(plain, symbol="BTCUSDT"))
    assert bars == list(islice(read_klines(source), 1000))
    assert bars[0].interval == "1m"


def test_hourly_file_takes_interval_from_name_and_maps_columns_by_header() -> None:
    # open_time,date,open,... : the header, not the position, says where each value is.
    bars = list(read_klines(data_file(BTC_1H)))
    assert len(bars) == 55_765
    assert bars[0].id == "binance.BTCUSDT.1h.1502942400000000000"
    assert (bars[0].open, bars[0].close, bars[0].volume) == (Decimal("4261.48"), Decimal("4308.83"),
                                                              Decimal("47.181009"))
    assert bars[0].ts_event - bars[0].ts_open == parse_interval("1h")


def test_microsecond_times_are_recognised(tmp_path: Path) -> None:
    # data.binance.vision spot files from 2025 on carry µs times.
    path = write(tmp_path / "BTCUSDT-1m-2025-01.csv",
                 ["1735689600000000,93576.00,93610.93,93537.50,93610.93,8.21827",
                  "1735689660000000,93610.93,93652.00,93606.93,93648.00,17.36578"])
    bars = list(read_klines(path))
    assert [b.ts_open for b in bars] == [1735689600000000000, 1735689660000000000]
    assert bars[0].interval == "1m"


# ----------------------------------------------------------------------------- errors


HEADER = "open_time,open,high,low,close,volume"
GOOD = ["1727751600000,63443.76,63460.0,63440.0,63440.01,14.63212",
        "1727751660000,63440.01,63440.01,63430.0,63430.02,1.16333"]


@pytest.mark.parametrize(("rows", "line", "problem"), [
    ([HEADER, GOOD[0], "1727751660000,63440.01,63440.01,63430.0,63430.02"], 3, "5 columns, expected 6"),
    ([HEADER, GOOD[0], "1727751660000,63440.01,x63440.01,63430.0,63430.02,1.1"], 3, "high 'x63440.01' is not a number"),
    ([HEADER, GOOD[0], "1727751660000,NaN,63440.01,63430.0,63430.02,1.1"], 3, "open 'NaN' is not a number"),
    ([HEADER, GOOD[0], "17277516600.5,1,1,1,1,1"], 3, "open_time '17277516600.5' is not an integer"),
    ([HEADER, GOOD[0], GOOD[0]], 3, "open_time 1727751600000 repeats the previous one (duplicate)"),
    ([HEADER, GOOD[1], GOOD[0]], 3, "open_time 1727751600000 is before the previous 1727751660000 "
                                    "(file not sorted by time)"),
    ([HEADER, GOOD[0], "", GOOD[1]], 3, "blank line"),
    (["open_time,open,high,low,close", "1727751600000,1,1,1,1"], 1, "header lacks volume"),
    (["1727751600000,1,1,1,1,1,1,1"], 1, "8 columns without a header"),
])
def test_bad_kline_rows_name_file_line_and_problem(tmp_path: Path, rows: list[str], line: int,
                                                  problem: str) -> None:
    path = write(tmp_path / "BTCUSDT-1m.csv", rows)
    with pytest.raises(DataError) as err:
        list(read_klines(path))
    assert err.value.path == str(path) and err.value.line == line
    assert str(err.value).startswith(f"{path}:{line}: ")
    assert problem in str(err.value)


def test_rows_whose_extra_and_missing_columns_cancel_out_are_still_refused(tmp_path: Path) -> None:
    # The block has the right number of fields in all: only their rows are wrong.
    rows = [HEADER, GOOD[0] + ",1", "1727751660000,63440.01,63440.01,63430.0,63430.02"]
    path = write(tmp_path / "BTCUSDT-1m.csv", rows)
    with pytest.raises(DataError, match=rf"^{path}:2: 7 columns, expected 6$"):
        list(read_klines(path))


def test_a_file_without_line_ends_fails_within_the_first_blocks(tmp_path: Path) -> None:
    rows = [HEADER, *GOOD] * 20_000  # about 1.4 MB, its lines ended by \r only
    path = tmp_path / "BTCUSDT-1m.csv"
    path.write_bytes("\r".join(rows).encode())
    with pytest.raises(DataError, match=rf"^{path}:1: no line end in [0-9,]+ bytes: not a CSV of klines or trades"):
        read_klines(path)


def test_bad_row_deep_in_a_large_gzip_file_is_found_on_its_line(tmp_path: Path) -> None:
    rows = text_lines(data_file(BTC_1M))
    rows[40_000] = rows[40_000].replace(",", ";", 1)
    path = tmp_path / "binance_spot_BTCUSDT_1m.csv.gz"
    path.write_bytes(gzip.compress(("\n".join(rows) + "\n").encode()))
    with pytest.raises(DataError, match=rf"^{path}:40001: 5 columns, expected 6$"):
        list(read_klines(path))


def test_unreadable_missing_and_truncated_files(tmp_path: Path) -> None:
    missing = tmp_path / "BTCUSDT-1m.csv"
    with pytest.raises(DataError, match=r"BTCUSDT-1m\.csv: cannot open file: No such file") as err:
        read_klines(missing)
    assert err.value.line is None
    truncated = tmp_path / "BTCUSDT-1m.csv.gz"
    truncated.write_bytes(data_file(BTC_1M).read_bytes()[:200_000])
    with pytest.raises(DataError, match="cannot read the file"):
        list(read_klines(truncated))
    empty = tmp_path / "ETHUSDT-1m.csv"
    empty.write_text("")
    with pytest.raises(DataError, match="empty file"):
        read_klines(empty)


def test_symbol_must_come_from_name_or_argument(tmp_path: Path) -> None:
    path = write(tmp_path / "klines.csv", [HEADER, *GOOD])
    with pytest.raises(DataError, match="cannot tell the symbol from the file name; pass symbol="):
        read_klines(path)
    assert [b.symbol for b in read_klines(path, symbol="ETHUSDT", venue="binance_usdm")] == ["ETHUSDT"] * 2


# ----------------------------------------------------------------------------- trades


def test_btc_trades_capture() -> None:
    trades = list(read_trades(data_file(BTC_TRADES)))
    assert len(trades) == 19_904
    assert trades[0] == Trade(id="binance.BTCUSDT.3735683259", ts_event=1723161255342_000_000, venue="binance",
                              symbol="BTCUSDT", price=Decimal("61837.63000000"), qty=Decimal("0.02000000"),
                              aggressor="sell")
    assert trades[-1].id == "binance.BTCUSDT.3735703162" and trades[-1].aggressor == "buy"
    ids = [int(t.id.rsplit(".", 1)[1]) for t in trades]
    assert ids == list(range(ids[0], ids[0] + len(ids)))  # the capture has no gaps
    assert {t.aggressor for t in trades} == {"buy", "sell"}


def test_aggtrades_with_and_without_header(tmp_path: Path) -> None:
    source = data_file(XRPETH_AGGTRADES)
    trades = list(read_trades(source))
    assert len(trades) == 12_477
    assert trades[0] == Trade(id="binance.XRPETH.13519807", ts_event=1570752011620_000_000, venue="binance",
                              symbol="XRPETH", price=Decimal("0.00141342"), qty=Decimal("23.00000000"),
                              aggressor="sell")
    headerless = write(tmp_path / "XRPETH-aggTrades-2019-10-11.csv", text_lines(source)[1:501])
    assert list(read_trades(headerless)) == trades[:500]


def test_trade_errors(tmp_path: Path) -> None:
    header = "agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker,is_best_match"
    same_time = ["1,0.5,2,1,1,1570752011620,true,true", "2,0.6,1,2,2,1570752011620,false,true"]
    assert len(list(read_trades(write(tmp_path / "XRPETH-aggTrades.csv", [header, *same_time])))) == 2
    backwards = [header, "1,0.5,2,1,1,1570752011620,true,true", "2,0.6,1,2,2,1570752011000,false,true"]
    with pytest.raises(DataError, match=r"XRPETH-aggTrades\.csv:3: trade time 1570752011000 is before"):
        list(read_trades(write(tmp_path / "XRPETH-aggTrades.csv", backwards)))
    maker = [header, "1,0.5,2,1,1,1570752011620,yes,true"]
    with pytest.raises(DataError, match=r":2: is_buyer_maker 'yes' is not true or false"):
        list(read_trades(write(tmp_path / "XRPETH-aggTrades.csv", maker)))
    with pytest.raises(DataError, match=r":1: header lacks qty/quantity"):
        read_trades(write(tmp_path / "XRPETH-trades.csv", ["trade_id,price,time,is_buyer_maker", "1,2,3,true"]))


def test_read_market_file_dispatches_on_content(tmp_path: Path) -> None:
    assert isinstance(next(read_market_file(data_file(XRPETH_1M))), Bar)
    assert isinstance(next(read_market_file(data_file(XRPETH_AGGTRADES))), Trade)
    assert isinstance(next(read_market_file(data_file(LINK_USDM_12COL))), Bar)
    headerless_trades = write(tmp_path / "XRPETH-aggTrades.csv", ["1,0.5,2,1,1,1570752011620,true,true"])
    assert isinstance(next(read_market_file(headerless_trades)), Trade)
    with pytest.raises(DataError, match="neither a Binance kline, trades, bookTicker nor funding rate CSV"):
        read_market_file(write(tmp_path / "BTCUSDT.csv", ["a,b,c", "1,2,3"]))


# ----------------------------------------------------------------------------- bars from trades


def test_xrpeth_aggtrades_aggregate_exactly_to_binance_1m_bars() -> None:
    built = list(bars_from_trades(read_trades(data_file(XRPETH_AGGTRADES)), "1m"))
    assert len(built) == 2_469
    assert built == list(read_klines(data_file(XRPETH_1M)))


def test_bars_from_trades_of_a_real_capture_cover_every_trade() -> None:
    trades = list(read_trades(data_file(BTC_TRADES)))
    bars = list(bars_from_trades(trades, "1m"))
    assert sum(b.volume for b in bars) == sum(t.qty for t in trades)
    assert bars[0].open == trades[0].price and bars[-1].close == trades[-1].price
    assert all(b.ts_open % MINUTE == 0 and b.low <= min(b.open, b.close) <= max(b.open, b.close) <= b.high
               for b in bars)
    assert [b.ts_open for b in bars] == sorted({t.ts_event - t.ts_event % MINUTE for t in trades})


def trade(n: int, ts: int, price: str, symbol: str = "BTCUSDT") -> Trade:
    return Trade(id=f"binance.{symbol}.{n}", ts_event=ts, venue="binance", symbol=symbol, price=Decimal(price),
                 qty=Decimal("1"), aggressor="buy")


def test_bars_from_trades_refuses_mixed_symbols_and_time_going_back() -> None:
    with pytest.raises(ValueError, match="binance.ETHUSDT trade binance.ETHUSDT.2 among binance.BTCUSDT"):
        list(bars_from_trades([trade(1, 0, "1"), trade(2, 1, "2", "ETHUSDT")]))
    with pytest.raises(ValueError, match="trades must be in time order"):
        list(bars_from_trades([trade(1, 2 * MINUTE, "1"), trade(2, MINUTE, "2")]))
    assert list(bars_from_trades([])) == []


def test_parse_and_format_interval() -> None:
    assert [parse_interval(i) for i in ("1s", "1m", "15m", "4h", "1d")] == [
        10**9, 60 * 10**9, 900 * 10**9, 4 * 3600 * 10**9, 86400 * 10**9]
    assert [format_interval(parse_interval(i)) for i in ("30s", "1m", "15m", "1h", "4h", "1d")] == [
        "30s", "1m", "15m", "1h", "4h", "1d"]
    for bad in ("1", "m", "0m", "1M", "1w", " 1m"):
        with pytest.raises(ValueError, match="interval .* is not a count and a unit"):
            parse_interval(bad)


# ----------------------------------------------------------------------------- replay


def test_merge_by_time_interleaves_symbols() -> None:
    btc = list(islice(read_klines(data_file(BTC_1M)), 100))
    eth = list(islice(read_klines(data_file(ETH_1M)), 100))
    merged = list(merge_by_time([btc, eth]))
    assert len(merged) == 200
    assert [e.ts_event for e in merged] == sorted(e.ts_event for e in merged)
    assert [e.symbol for e in merged[:4]] == ["BTCUSDT", "ETHUSDT", "BTCUSDT", "ETHUSDT"]


class FakeTime:
    """A clock that only moves when replay sleeps, recording every sleep."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


async def test_replay_paces_by_event_time_at_speed() -> None:
    bars = list(islice(read_klines(data_file(BTC_1M)), 5))
    fake = FakeTime()
    out = [e async for e in replay(bars, speed=60.0, clock=fake.clock, sleep=fake.sleep)]
    assert out == bars
    assert fake.sleeps == pytest.approx([1.0] * 4)  # one minute apart at 60x: one second


async def test_replay_at_full_speed_still_lets_the_loop_run() -> None:
    trades = list(read_trades(data_file(BTC_TRADES)))
    fake = FakeTime()
    out = [e async for e in replay(trades, speed=0, clock=fake.clock, sleep=fake.sleep)]
    assert out == trades
    assert fake.sleeps == [0] * (len(trades) // YIELD_EVERY)


# ----------------------------------------------------------------------------- source


async def test_source_replays_configured_files_merged_in_time_order() -> None:
    cfg = IngestConfig(replay=[str(data_file(BTC_1M)), str(data_file(ETH_1M))], speed=0)
    events = market_events(cfg)
    first = [await anext(events) for _ in range(6)]
    await events.aclose()
    assert [(e.symbol, e.ts_open) for e in first] == [
        (s, 1727751600000000000 + n * MINUTE) for n in range(3) for s in ("BTCUSDT", "ETHUSDT")]


async def test_a_resumed_replay_starts_after_what_the_platform_has_per_symbol() -> None:
    btc, eth = (list(islice(read_klines(data_file(name)), 100)) for name in (BTC_1M, ETH_1M))
    stored = Stored(bars={("binance", "BTCUSDT"): btc[59], ("binance", "ETHUSDT"): eth[39]})
    events = market_events(IngestConfig(replay=[str(data_file(BTC_1M)), str(data_file(ETH_1M))]), stored)
    first = [await anext(events) for _ in range(22)]
    await events.aclose()
    assert first == eth[40:60] + [btc[60], eth[60]]  # skipped before the pacer, which starts at eth[40]


def test_source_fails_at_start_on_a_missing_replay_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cannot open file"):
        market_events(IngestConfig(replay=[str(tmp_path / "BTCUSDT-1m.csv")]))


def test_source_websocket_url_asks_for_klines_of_the_configured_interval() -> None:
    cfg = IngestConfig(symbols=["BTCUSDT", "ETHUSDT"], interval="5m", streams=["kline", "trade"])
    assert websocket_url(cfg) == ("wss://stream.binance.com:9443/stream?streams="
                                  "btcusdt@kline_5m/btcusdt@trade/ethusdt@kline_5m/ethusdt@trade")


def test_book_ticker_captures_read_as_quotes_on_the_exchange_clock() -> None:
    from proto.events import Quote
    from services.ingest.quotes import read_book_ticker, recorder_offset_ns
    from tests.datafiles import BTC_BOOK_TICKER, USDM_BTC_BOOK_TICKER

    spot = list(islice(read_market_file(data_file(BTC_BOOK_TICKER)), 1000))
    assert all(type(q) is Quote for q in spot)
    offset = recorder_offset_ns(data_file(BTC_TRADES))
    assert 1_270_000_000 < offset < 1_280_000_000  # the README's ~1.27 s
    with gzip.open(data_file(BTC_BOOK_TICKER), "rt") as f:
        next(f)
        row = next(f).strip().split(",")
    assert (spot[0].id, spot[0].bid, spot[0].ask_qty, spot[0].ts_event) == (
        f"binance.BTCUSDT.q{row[0]}", Decimal(row[1]), Decimal(row[4]), int(row[7]) + offset)
    assert all(a.ts_event <= b.ts_event for a, b in zip(spot, spot[1:]))
    usdm = next(read_book_ticker(data_file(USDM_BTC_BOOK_TICKER)))
    assert usdm.ts_event == 1723161256313000000  # its own transaction time


def test_a_spot_book_ticker_without_its_trades_file_beside_it_says_what_is_missing(tmp_path: Path) -> None:
    from services.ingest.quotes import read_book_ticker
    from tests.datafiles import BTC_BOOK_TICKER

    lonely = write_slice(data_file(BTC_BOOK_TICKER), tmp_path / "binance_spot_BTCUSDT_bookticker_x.csv", 10)
    with pytest.raises(DataError, match="no exchange time.*trades file binance_spot_BTCUSDT_trades_x.csv"):
        list(read_book_ticker(lonely))
    assert len(list(read_book_ticker(lonely, clock_offset_ns=5))) == 10


@pytest.mark.parametrize("column, value, problem", [
    (1, "abc", "bid_price 'abc' is not a number"), (4, "nan", "ask_qty 'nan' is not a number"),
    (2, "inf", "bid_qty 'inf' is not a number"), (5, "12x", "transaction_time_ms '12x' is not an integer"),
    (0, "", "update_id '' is not an integer"), (0, "7a", "update_id '7a' is not an integer"),
])
def test_a_bad_book_ticker_row_is_named_by_its_line_whether_or_not_its_quote_is_ever_made(
        tmp_path: Path, column: int, value: str, problem: str) -> None:
    from services.ingest.quotes import read_book_ticker, read_book_ticker_blocks
    from tests.datafiles import USDM_BTC_BOOK_TICKER

    rows = write_slice(data_file(USDM_BTC_BOOK_TICKER), tmp_path / "binance_usdm_BTCUSDT_bookticker_x.csv", 10)
    lines = rows.read_text().splitlines()
    fields = lines[7].split(",")
    fields[column] = value
    lines[7] = ",".join(fields)
    rows.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=f":8: {problem}"):
        list(read_book_ticker(rows))
    with pytest.raises(DataError, match=f":8: {problem}"):
        list(read_book_ticker_blocks(rows))  # the blocks a backtest reads, their quotes not made


def test_a_replayed_trade_file_brings_the_bars_of_the_interval_right_after_their_last_trade() -> None:
    """Paper mode replays a capture as the backtest on ticks reads it: its trades, and the bars the
    strategies trade on built from them."""
    from services.ingest.replay import recorded

    events = list(islice(recorded([data_file(BTC_TRADES)], "5s"), 3000))
    trades = [e for e in events if type(e) is Trade]
    bars = [e for e in events if type(e) is Bar]
    assert len(bars) >= 5 and trades == list(islice(read_trades(data_file(BTC_TRADES)), len(trades)))
    assert bars == list(islice(bars_from_trades(read_trades(data_file(BTC_TRADES)), "5s"), len(bars)))
    for i, e in enumerate(events):
        if type(e) is Bar:  # after every trade it sums, before any later one
            assert all(t.ts_event < e.ts_event for t in events[:i] if type(t) is Trade)
            assert all(t.ts_event >= e.ts_event for t in events[i + 1:] if type(t) is Trade)
    assert [e.ts_event for e in events] == sorted(e.ts_event for e in events)
