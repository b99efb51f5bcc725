"""Perpetual funding, from Binance's real files to the portfolio's books: ingest reads the rate
history and the websocket's markPrice stream; portfolio pays qty x mark x rate on each open
position at each funding time, once."""

from __future__ import annotations

import csv
import gzip
import json
from decimal import Decimal as D

import pytest

from bosun.apps.config import ClientConfig, Config
from bosun.runtime.clock import SimClock
from bosun.runtime.inproc import InProcessBus
from proto.events import FundingPaid, FundingRateSettled, OrderFilled, PriceSnapshot
from services.ingest.binance_ws import parse_message
from services.ingest.files import DataError, read_market_file
from services.ingest.funding import FundingSettler, MarkPriceUpdate
from services.portfolio.actor import PortfolioActor, StoreFunding
from tests.datafiles import BTC_USDM_WS_MARKPRICE, XRP_FUNDING, XRP_MARK_8H, data_file

VENUE, SYMBOL = "binance_usdm", "XRPUSDT"
KEY = ("alice", VENUE, SYMBOL)
CONFIG = Config(clients=[ClientConfig(id="alice", capital=D(10_000))], strategies=[])
HOUR_NS = 3_600 * 10**9


def fill(n: int, ts: int, side: str, qty: str, price: D) -> OrderFilled:
    return OrderFilled(id=f"fill-{n}", ts_event=ts, client_order_id=f"order-{n}", client="alice", venue=VENUE,
                       symbol=SYMBOL, side=side, qty=D(qty), price=price, fee=D(0))


def test_funding_over_the_real_xrpusdt_history_equals_a_hand_computation():
    """A month of real XRPUSDT funding (91 funding times, rates from -0.002193 to 0.000583) on a
    position that is long 1000, then long 600, then short 500: marked at the real 8h mark price."""
    with open(data_file(XRP_FUNDING)) as f:
        rates = [(int(r["funding_time_ms"]), D(r["funding_rate"])) for r in csv.DictReader(f)]
    with open(data_file(XRP_MARK_8H)) as f:
        marks = {int(r["open_time"]): D(r["open"]) for r in csv.DictReader(f)}
    ms = 1_000_000

    # The position the test holds: fills 4 hours after the 10th and the 60th funding time.
    def held(n: int) -> D:
        return D(1000) if n < 10 else D(600) if n < 60 else D(-500)

    expected = D(0)
    for n, (time_ms, rate) in enumerate(rates):
        mark = marks[time_ms // 1000 * 1000]  # the 8h mark kline opening at the funding time
        expected += held(n) * mark * rate  # paid: a long pays a positive rate, a short receives it
    assert len(rates) == 91 and expected != 0

    bus = InProcessBus()
    effects: list = []
    paid: list[FundingPaid] = []
    bus.on_effect(effects.append)
    bus.subscribe("ledger.funding.>", paid.append)
    actor = bus.attach(PortfolioActor(SimClock(), bus, CONFIG.portfolio_config()))
    funding = list(read_market_file(data_file(XRP_FUNDING), venue=VENUE))  # as ingest replays the file
    assert [e.rate for e in funding] == [r for _, r in rates]
    first = funding[0].ts_event
    bus.publish(fill(1, first - HOUR_NS, "buy", "1000", marks[first // ms]))
    for n, event in enumerate(funding):
        if n == 10:
            bus.publish(fill(2, event.ts_event - 4 * HOUR_NS, "sell", "400", marks[event.ts_event // ms]))
        if n == 60:
            bus.publish(fill(3, event.ts_event - 4 * HOUR_NS, "sell", "1100", marks[event.ts_event // ms]))
        bus.publish(PriceSnapshot(id=f"mark-{n}", ts_event=event.ts_event, venue=VENUE, symbol=SYMBOL,
                                  price=marks[event.ts_event // ms]))
        bus.publish(event)
        bus.publish(event)  # a redelivery: booked once
        bus.drain()

    position = actor.positions()[KEY]
    assert position.funding == expected
    assert sum(p.amount for p in paid) == expected and len(paid) == 91
    assert [e.payment for e in effects if isinstance(e, StoreFunding)] == paid  # stored like a fee, each once
    assert paid[-1].qty == D(-500) and paid[0].qty == D(1000)
    # In PnL: realized net of fees and funding, and the equity.
    assert position.net_realized == position.realized_pnl - position.fees - expected
    last_mark = marks[funding[-1].ts_event // ms]
    assert actor.equity("alice") == D(10_000) + position.realized_pnl - expected + position.unrealized(last_mark)


def test_funding_is_paid_only_by_open_positions_of_that_market():
    bus = InProcessBus()
    paid: list[FundingPaid] = []
    bus.subscribe("ledger.funding.>", paid.append)
    bus.on_effect(lambda e: None)
    actor = bus.attach(PortfolioActor(SimClock(), bus, CONFIG.portfolio_config()))
    bus.publish(fill(1, 1, "buy", "10", D("1.5")))
    bus.publish(fill(2, 2, "sell", "10", D("1.5")))  # flat again
    spot = OrderFilled(id="spot-1", ts_event=3, client_order_id="o", client="alice", venue="binance", symbol=SYMBOL,
                       side="buy", qty=D(10), price=D("1.5"), fee=D(0))
    bus.publish(spot)
    bus.publish(FundingRateSettled(id="f", ts_event=10, venue=VENUE, symbol=SYMBOL, rate=D("0.01")))
    bus.drain()
    assert paid == [] and all(p.funding == 0 for p in actor.positions().values())


def test_the_websocket_mark_price_stream_settles_each_funding_time_once():
    """The real capture of BTCUSDT's markPrice@1s across the 2023-04-05 00:00 funding time: its
    first update still names 00:00 (r 0.00002760, p 28155.1), the next names 08:00."""
    settler = FundingSettler()
    out = []
    with gzip.open(data_file(BTC_USDM_WS_MARKPRICE), "rt") as f:
        for line in f:
            if "markPriceUpdate" in line:
                update = parse_message(json.dumps(json.loads(line)["msg"]), venue=VENUE)
                assert isinstance(update, MarkPriceUpdate)
                if (event := settler.on_update(update)) is not None:
                    out.append(event)
    assert out == [FundingRateSettled(id=f"{VENUE}.BTCUSDT.funding.1680652800000000000", ts_event=1680652800000000000,
                                      venue=VENUE, symbol="BTCUSDT", rate=D("0.00002760"),
                                      mark_price=D("28155.10000000"))]


def test_a_gap_across_the_funding_time_books_nothing():
    settler = FundingSettler()
    before = MarkPriceUpdate(VENUE, "BTCUSDT", D(100), D("0.0001"), 28_800_000, 28_800_000 - 120_000)
    after = MarkPriceUpdate(VENUE, "BTCUSDT", D(100), D("0.0002"), 57_600_000, 28_800_000 + 5_000)
    assert settler.on_update(before) is None and settler.on_update(after) is None
    assert settler.unsettled == 1


@pytest.mark.parametrize("row, problem", [("1637193600017,NaN", "rate 'NaN' is not a number"),
                                          ("1637193600017,2", "not a rate")])
def test_a_bad_funding_row_is_named(tmp_path, row, problem):
    path = tmp_path / "binance_usdm_XRPUSDT_funding.csv"
    path.write_text(f"funding_time_ms,funding_rate\n{row}\n")
    with pytest.raises(DataError, match=f"{path}:2: .*{problem}"):
        list(read_market_file(path))


def test_ingest_publishes_the_funding_its_sources_bring():
    """The ingest actor, fed as its source loop feeds it: mark price updates settle at the funding
    time; a rate history's events go out as they are."""
    from services.ingest.actor import MarketDataActor

    bus = InProcessBus()
    out: list[FundingRateSettled] = []
    bus.subscribe("md.funding.>", out.append)
    actor = MarketDataActor(SimClock(), bus)
    eight_h = 28_800_000
    history = FundingRateSettled(id="h", ts_event=0, venue=VENUE, symbol=SYMBOL, rate=D("0.0001"))
    actor.on_events([history,
                     MarkPriceUpdate(VENUE, SYMBOL, D("1.1"), D("0.0002"), eight_h, eight_h - 1_000),
                     MarkPriceUpdate(VENUE, SYMBOL, D("1.2"), D("0.0003"), 2 * eight_h, eight_h + 1_000)])
    bus.drain()
    assert [(e.ts_event, e.rate, e.mark_price) for e in out] == [(0, D("0.0001"), None),
                                                                  (eight_h * 1_000_000, D("0.0002"), D("1.1"))]


def test_a_backtest_over_the_real_xrpusdt_perpetual_pays_funding_as_a_hand_computation():
    """sma 2/5 long/short on the real 8h XRPUSDT mark klines with the real funding history: each
    funding time T is paid on what the backtest's own fills held before T, at the close of the
    kline ending at T (the newest price, as in paper), x the rate; every equity point is the run
    without funding less what was paid before it."""
    from bosun.apps import backtest

    paths = [data_file(XRP_MARK_8H), data_file(XRP_FUNDING)]
    flags = backtest.Flags(params={"fast": 2, "slow": 5}, qty=D(1000), fee_bps=D(4))

    def run(with_funding: bool) -> backtest.Result:
        markets, bars = backtest.open_data(paths)
        config = backtest.config_from_flags(flags, markets)
        return backtest.run(config, bars, funding=backtest.open_funding(paths, markets) if with_funding else None)

    paid, free = run(True), run(False)
    assert paid.fills == free.fills and len(paid.fills) > 10  # fixed size: funding moves no decision
    with open(data_file(XRP_FUNDING)) as f:
        rates = [(int(r["funding_time_ms"]) // 1000 * 10**9, D(r["funding_rate"])) for r in csv.DictReader(f)]
    with open(data_file(XRP_MARK_8H)) as f:
        closes = {int(r["open_time"]) * 1_000_000 + 8 * HOUR_NS: D(r["close"]) for r in csv.DictReader(f)}
    due: list[tuple[int, D]] = []  # (funding time, paid then)
    for t, rate in rates:
        held = sum((f.qty if f.side == "buy" else -f.qty for f in paid.fills if f.ts_event < t), D(0))
        if held and t < paid.equity[-1][0]:
            due.append((t, held * closes[t] * rate))
    expected = sum((amount for _, amount in due), D(0))
    assert len(due) > 30 and expected != 0
    assert paid.metrics["total_funding"] == expected and "total_funding" not in free.metrics
    assert paid.metrics["total_pnl"] == free.metrics["total_pnl"] - expected
    for (t, with_funding), (same_t, without) in zip(paid.equity, free.equity, strict=True):
        assert t == same_t and without - with_funding == sum((a for ft, a in due if ft < t), D(0))


def test_a_backtest_refuses_a_funding_file_of_a_market_without_bars(tmp_path):
    from bosun.apps import backtest

    other = tmp_path / "binance_usdm_LINKUSDT_funding_rate_8h.csv"
    other.write_text(open(data_file(XRP_FUNDING)).read())
    markets, _ = backtest.open_data([data_file(XRP_MARK_8H)])
    with pytest.raises(DataError, match="funding of binance.LINKUSDT, a market without bars in the data "
                                        r"\(bars of: binance.XRPUSDT\)"):
        backtest.open_funding([data_file(XRP_MARK_8H), other], markets)


def test_funding_is_paid_on_what_was_held_at_the_funding_time_not_when_the_event_arrives():
    """The funding event follows its time by about a second: fills done after the funding time but
    handled before the event do not count; a position closed just after it still pays."""
    bus = InProcessBus()
    paid: list[FundingPaid] = []
    bus.subscribe("ledger.funding.>", paid.append)
    bus.on_effect(lambda e: None)
    actor = bus.attach(PortfolioActor(SimClock(), bus, CONFIG.portfolio_config()))
    t, second = 8 * HOUR_NS, 10**9

    def funding(n: int) -> FundingRateSettled:
        return FundingRateSettled(id=f"f{n}", ts_event=n * t, venue=VENUE, symbol=SYMBOL, rate=D("0.001"),
                                  mark_price=D(2))

    bus.publish(fill(1, t - second, "buy", "100", D(2)))
    bus.publish(funding(1))  # the market is a perpetual from here on
    bus.publish(fill(2, 2 * t + second, "buy", "50", D(2)))  # after the funding time, handled before its event
    bus.publish(fill(3, 2 * t + 2 * second, "sell", "150", D(2)))  # flat
    bus.publish(funding(2))
    bus.publish(fill(4, 3 * t + second, "buy", "10", D(2)))  # opened after the funding time
    bus.publish(funding(3))
    bus.drain()
    assert [(p.ts_event, p.qty, p.amount) for p in paid] == [(t, D(100), D("0.2")), (2 * t, D(100), D("0.2"))]
    assert actor.positions()[KEY].funding == D("0.4")


def test_the_rest_funding_history_reads_with_its_mark_price():
    from services.ingest.funding import parse_funding_history

    raw = ('[{"symbol":"BTCUSDT","fundingTime":1698768000001,"fundingRate":"0.00010000","markPrice":"34287.54"},'
           '{"symbol":"BTCUSDT","fundingTime":1698796800000,"fundingRate":"-0.00002100","markPrice":""}]')
    assert [(e.ts_event, e.rate, e.mark_price) for e in parse_funding_history(raw, VENUE)] == [
        (1698768000_000_000_000, D("0.0001"), D("34287.54")), (1698796800_000_000_000, D("-0.000021"), None)]
    with pytest.raises(ValueError, match="row 0: .*fundingRate"):
        parse_funding_history('[{"symbol":"BTCUSDT","fundingTime":1}]', VENUE)
    with pytest.raises(ValueError, match="row 0: .*not a rate"):
        parse_funding_history('[{"symbol":"BTCUSDT","fundingTime":1,"fundingRate":"NaN"}]', VENUE)
    with pytest.raises(ValueError, match="malformed Binance funding history"):
        parse_funding_history('{"code": -1121, "msg": "Invalid symbol."}', VENUE)
