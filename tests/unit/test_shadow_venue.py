"""The shadow venue's fill rules and the tick/step rounding, with prices worked out by hand."""

from __future__ import annotations

import csv
import gzip
import re
from decimal import Decimal as D
from itertools import islice

import msgspec
import pytest

from services.execution.config import VenueConfig
from proto.events import (Bar, CancelOrder, ModifyOrder, OrderAccepted, OrderCanceled, OrderFilled, OrderRejected,
                          SubmitOrder, Trade)
from bosun.model.grid import round_price, round_qty
from services.execution.venues.shadow import ShadowVenue
from tests.datafiles import BTC_1M, data_file

T0 = 1_727_751_600_000_000_000  # 2024-10-01 03:00 UTC, a minute boundary
MIN = 60_000_000_000


def bar(i: int, o: str, h: str, low: str, c: str, symbol: str = "BTCUSDT") -> Bar:
    """The i-th 1m bar after T0: opens at T0 + i min, closes (ts_event) a minute later."""
    ts_open = T0 + i * MIN
    return Bar(id=f"binance.{symbol}.1m.{ts_open}", ts_event=ts_open + MIN, venue="binance", symbol=symbol,
               interval="1m", ts_open=ts_open, open=D(o), high=D(h), low=D(low), close=D(c), volume=D(1))


def trade(n: int, ts: int, price: str) -> Trade:
    return Trade(id=f"binance.BTCUSDT.{n}", ts_event=ts, venue="binance", symbol="BTCUSDT", price=D(price),
                 qty=D("0.1"), aggressor="buy")


def order(coid: str = "c1", side: str = "buy", qty: str = "0.5", limit: str | None = None,
          reason: str = "signal", ts: int = T0 + MIN, order_type: str | None = None) -> SubmitOrder:
    """An order decided at `ts` (by default bar 0's close)."""
    return SubmitOrder(id=coid, ts_event=ts, client="alice", venue="binance", symbol="BTCUSDT", side=side,
                       qty=D(qty), order_type=order_type or ("limit" if limit else "market"),
                       limit_price=D(limit) if limit else None, target_id="t1", reason=reason)


def cancel(coid: str, ts: int) -> CancelOrder:
    return CancelOrder(id=f"{coid}.cancel", ts_event=ts, client_order_id=coid, client="alice", venue="binance",
                       symbol="BTCUSDT", reason="kill_switch")


def venue(max_recent: int = 10_000, **cfg: object) -> ShadowVenue:
    settings = {"fee_bps": D(10), "slippage_bps": D(5)} | cfg
    return ShadowVenue("binance", {"alice": VenueConfig(**settings)}, max_recent)


def fills(events: list) -> list[OrderFilled]:
    return [e for e in events if isinstance(e, OrderFilled)]


# ----------------------------------------------------------------------------- market orders


def test_market_buy_fills_at_next_bar_open_with_slippage_and_fee() -> None:
    v = venue()
    assert not v.on_bar(bar(0, "99", "101", "98", "100"))
    out = v.submit(order(ts=T0 + MIN))  # decided at bar 0's close
    assert [type(e) for e in out] == [OrderAccepted]
    assert out[0].venue_order_id == "shadow-c1" and out[0].client_order_id == "c1"
    [fill] = v.on_bar(bar(1, "100", "102", "99", "101"))
    # open 100 x (1 + 5/10000) = 100.05; fee 10/10000 x 0.5 x 100.05 = 0.050025
    assert (fill.id, fill.price, fill.qty, fill.fee) == ("c1.1", D("100.05"), D("0.5"), D("0.050025"))
    assert (fill.ts_event, fill.liquidity, fill.side, fill.reason) == (T0 + MIN, "taker", "buy", "signal")
    assert v.working_orders() == []
    assert not v.on_bar(bar(2, "100", "102", "99", "101"))  # filled once only


def test_market_sell_slips_down() -> None:
    v = venue()
    v.submit(order(side="sell", qty="2", ts=T0 + MIN))
    [fill] = v.on_bar(bar(1, "200", "201", "199", "200"))
    assert fill.price == D("199.90")  # 200 x (1 - 0.0005)
    assert fill.fee == D("0.39980")  # 0.001 x 2 x 199.9


def test_fill_close_uses_the_bar_closing_at_or_after_the_decision() -> None:
    v = venue(fill="close", slippage_bps=D(0))
    v.submit(order(ts=T0 + MIN))
    [fill] = v.on_bar(bar(0, "99", "101", "98", "100.5"))  # closes at T0 + MIN: the decision time
    assert (fill.price, fill.ts_event) == (D("100.5"), T0 + MIN)


def test_order_arriving_after_its_fill_bar_fills_on_that_bar() -> None:
    bars = [bar(i, str(100 + i), str(102 + i), str(99 + i), str(101 + i)) for i in range(4)]
    early, late = venue(), venue()
    early.submit(order(ts=T0 + MIN))
    early_fills = [f for b in bars for f in early.on_bar(b)]
    for b in bars:
        late.on_bar(b)
    late_fills = fills(late.submit(order(ts=T0 + MIN)))
    assert late_fills == early_fills
    assert late_fills[0].price == D("101") * D("1.0005")  # bar 1's open: the first opening at/after the decision


def test_order_older_than_the_kept_bars_is_rejected_not_guessed() -> None:
    v = venue(max_recent=2, fee_bps=D(10), slippage_bps=D(0))
    for i in range(5):
        v.on_bar(bar(i, "100", "101", "99", "100"))
    [rejected] = v.submit(order(ts=T0 + MIN))
    assert isinstance(rejected, OrderRejected) and "cannot tell" in rejected.reason
    assert v.working_orders() == []


def test_only_the_bar_that_fell_out_last_tells_an_order_too_old() -> None:
    # Kept: bars 3 and 4; bar 2 fell out last (opens at T0 + 2 min). Decided after its open,
    # it could not have filled there, so the order fills on bar 3; decided at its open, it is too old.
    v = venue(max_recent=2, fee_bps=D(10), slippage_bps=D(0))
    for i in range(5):
        v.on_bar(bar(i, str(100 + i), "110", "90", "100"))
    _, fill = v.submit(order(ts=T0 + 2 * MIN + 1))
    assert (fill.price, fill.ts_event) == (D("103"), T0 + 3 * MIN)
    [rejected] = v.submit(order(coid="c2", ts=T0 + 2 * MIN))
    assert isinstance(rejected, OrderRejected) and "2 most recent bars kept for BTCUSDT" in rejected.reason


def test_repeated_or_older_bar_is_ignored() -> None:
    v = venue()
    v.on_bar(bar(2, "100", "101", "99", "100"))
    v.submit(order(ts=T0))
    assert not v.on_bar(bar(2, "100", "101", "99", "100"))
    assert not v.on_bar(bar(1, "100", "101", "99", "100"))


def test_market_order_on_trades_fills_at_first_trade_at_or_after_decision() -> None:
    v = venue(slippage_bps=D(0))
    decided = T0 + MIN
    v.on_trade(trade(1, decided - 1, "50"))
    assert fills(v.submit(order(ts=decided))) == []
    [fill] = v.on_trade(trade(2, decided, "51"))
    assert (fill.price, fill.ts_event) == (D("51"), decided)


# ----------------------------------------------------------------------------- limit orders


def test_limit_buy_fills_only_when_the_low_trades_through() -> None:
    v = venue()  # slippage configured: a maker fill must not pay it
    v.submit(order(limit="99", ts=T0))
    assert not v.on_bar(bar(0, "100", "101", "99", "100"))  # touched, not through
    [fill] = v.on_bar(bar(1, "100", "101", "98.5", "100"))
    assert (fill.price, fill.liquidity, fill.fee) == (D("99"), "maker", D("0.0495"))  # 0.001 x 0.5 x 99


def test_limit_sell_on_trades_fills_only_above_the_limit() -> None:
    v = venue()
    v.submit(order(side="sell", limit="101", ts=T0))
    assert not v.on_trade(trade(1, T0 + 1, "101"))
    [fill] = v.on_trade(trade(2, T0 + 2, "101.5"))
    assert fill.price == D("101")


def test_limit_bar_before_the_decision_does_not_fill() -> None:
    v = venue()
    v.on_bar(bar(0, "100", "101", "90", "100"))  # through the limit, but before the decision
    assert fills(v.submit(order(limit="99", ts=T0 + MIN))) == []


def test_limit_price_is_rounded_to_the_tick_never_worse() -> None:
    v = venue()
    v.submit(order(limit="99.999", ts=T0))  # buy: 99.99, never pay more than asked
    [fill] = v.on_bar(bar(0, "100", "101", "99.98", "100"))
    assert fill.price == D("99.99")


# ----------------------------------------------------------------------------- other rules


def test_market_on_close_fills_at_once_at_the_last_close() -> None:
    v = venue(slippage_bps=D(0))
    v.on_bar(bar(0, "100", "101", "99", "100"))
    v.on_bar(bar(1, "100", "105", "99", "104.5"))
    moc = order(side="sell", qty="1", reason="end_of_data", order_type="market_on_close", ts=T0 + 2 * MIN)
    accepted, fill = v.submit(moc)
    assert isinstance(accepted, OrderAccepted)
    assert (fill.price, fill.ts_event, fill.reason, fill.fee) == (D("104.5"), T0 + 2 * MIN, "end_of_data",
                                                                   D("0.1045"))


def test_market_on_close_without_a_bar_is_rejected() -> None:
    [rejected] = venue().submit(order(order_type="market_on_close", ts=T0))
    assert isinstance(rejected, OrderRejected) and "no bar seen for BTCUSDT" in rejected.reason


def test_cancel_and_cancel_unknown() -> None:
    v = venue()
    v.submit(order(ts=T0 + MIN))
    [canceled] = v.cancel(cancel("c1", T0 + 5))
    assert isinstance(canceled, OrderCanceled) and canceled.reason == "kill_switch"
    assert canceled.ts_event == T0 + MIN  # never before the order's own decision
    assert v.cancel(cancel("c1", T0 + 5)) == [] and not v.on_bar(bar(1, "100", "101", "99", "100"))


def test_bad_orders_are_rejected_with_the_reason() -> None:
    v = venue()
    [r1] = v.submit(order(qty="0", ts=T0))
    [r2] = v.submit(order(coid="c2", limit="0.001", ts=T0))  # rounds down to 0.00 on tick 0.01
    assert "qty must be > 0" in r1.reason and "limit price > 0" in r2.reason


def test_replay_restores_working_orders_and_their_fill_count() -> None:
    placed = order()
    live = venue()
    [accepted] = live.submit(placed)
    restarted = venue()
    restarted.replay(placed)
    restarted.replay(accepted)
    assert restarted.working_orders() == ["c1"]
    [fill] = live.on_bar(bar(1, "100", "101", "99", "100"))
    assert list(restarted.on_bar(bar(1, "100", "101", "99", "100"))) == [fill]
    replayed = venue()
    for entry in (placed, accepted, fill):
        replayed.replay(entry)
    assert replayed.working_orders() == [] and not replayed.on_bar(bar(1, "100", "101", "99", "100"))


def real_bars(n: int) -> list[Bar]:
    with gzip.open(data_file(BTC_1M), "rt") as f:
        return [Bar(id=f"binance.BTCUSDT.1m.{row['open_time']}", ts_event=(int(row["open_time"]) + 60_000) * 1_000_000,
                    venue="binance", symbol="BTCUSDT", interval="1m", ts_open=int(row["open_time"]) * 1_000_000,
                    open=D(row["open"]), high=D(row["high"]), low=D(row["low"]), close=D(row["close"]),
                    volume=D(row["volume"])) for row in islice(csv.DictReader(f), n)]


def test_real_bars_fills_do_not_depend_on_how_late_the_order_arrives() -> None:
    bars = real_bars(600)
    decisions = range(0, 530, 7)  # an order decided at the close of every 7th bar (+ 63 < 600)
    by_lag = []
    for lag in (0, 1, 5, 63):  # bars already seen when the order arrives
        v = venue()
        pending = {i + lag: i for i in decisions}
        got: list[OrderFilled] = []
        for n, b in enumerate(bars):
            if n in pending:
                i = pending[n]
                got += fills(v.submit(order(coid=f"o{i}", ts=bars[i].ts_event)))
            got += fills(v.on_bar(b))
        by_lag.append(sorted(got, key=lambda f: f.id))
    assert by_lag[0] == by_lag[1] == by_lag[2] == by_lag[3]
    assert [f.price for f in by_lag[0]] == [bars[int(f.id[1:-2]) + 1].open * D("1.0005")
                                            for f in by_lag[0]]  # the next bar's open, slipped
    assert len(by_lag[0]) == len(decisions)



def bracket(i: int, bars: list[Bar]) -> list[SubmitOrder]:
    """At bar i's close: buy 1, with a stop 0.2% under the close and a take-profit 0.3% over it."""
    close, ts = bars[i].close, bars[i].ts_event
    legs = [SubmitOrder(id=f"b{i}.{kind}", ts_event=ts, client="alice", venue="binance", symbol="BTCUSDT",
                        side="sell", qty=D(0), order_type=kind, stop_price=(close * level).quantize(D("0.01")),
                        close_position=True, oco=f"b{i}", target_id=f"t{i}", reason=reason)
            for kind, level, reason in (("stop_market", D("0.998"), "stop_loss"),
                                        ("take_profit_market", D("1.003"), "take_profit"))]
    return [order(coid=f"b{i}.entry", qty="1", ts=ts), *legs]


def replacing(i: int, previous: int | None, bars: list[Bar]) -> list:
    """As execution places a bracket: the previous one's legs cancelled first, at the same decision."""
    if previous is None:
        return bracket(i, bars)
    return [*(cancel(f"b{previous}.{kind}", bars[i].ts_event) for kind in ("stop_market", "take_profit_market")),
            *bracket(i, bars)]


def test_real_bars_brackets_do_not_depend_on_how_late_they_arrive() -> None:
    bars = real_bars(600)
    decisions = range(0, 530, 40)  # far enough apart for each bracket to close before the next entry
    by_lag = []
    # A cancel cannot undo a fill: one that arrives after the bars where the leg it cancels fired
    # is too late. So the lags here stay inside the time a bracket lives; over NATS the replay's
    # lead over the platform is bounded for this reason (bosun/apps/run.py).
    for lag in (0, 1, 2, 5):
        v = venue()
        pending = {i + lag: i for i in decisions}
        got: list = []
        for n, b in enumerate(bars):
            if n in pending:
                i = pending[n]
                for command in replacing(i, i - 40 if i else None, bars):
                    answer = v.cancel(command) if isinstance(command, CancelOrder) else v.submit(command)
                    got += [e for e in answer if not isinstance(e, OrderAccepted)]
            got += v.on_bar(b)
        by_lag.append(sorted(got, key=lambda e: (e.ts_event, e.id)))
    assert by_lag[0] == by_lag[1] == by_lag[2] == by_lag[3]
    exits = [f.reason for f in by_lag[0] if isinstance(f, OrderFilled) and f.reason != "signal"]
    assert {"stop_loss", "take_profit"} <= set(exits), "the real minutes hit both kinds of exit"
    assert len([e for e in by_lag[0] if isinstance(e, OrderCanceled) and e.reason.startswith("oco: ")]) == len(exits)

# ----------------------------------------------------------------------------- rounding


@pytest.mark.parametrize(("qty", "step", "expected"), [
    ("0.123456", "0.001", "0.123"),
    ("-0.123956", "0.001", "-0.123"),  # toward zero for shorts too
    ("5", "0.001", "5"),
    ("0.0009", "0.001", "0"),
    ("7.3", "0.5", "7.0"),
    ("0.9999999999999999999999999999", "0.5", "0.5"),  # qty / step at 28 digits would give 1.0
])
def test_round_qty_toward_zero(qty: str, step: str, expected: str) -> None:
    assert round_qty(D(qty), D(step)) == D(expected)


@pytest.mark.parametrize(("price", "side", "expected"), [
    ("100.019", "buy", "100.01"),  # buy limit down: never pay more than asked
    ("100.011", "sell", "100.02"),  # sell limit up: never sell for less than asked
    ("100.01", "buy", "100.01"),
    ("100.01", "sell", "100.01"),
])
def test_round_price_direction(price: str, side: str, expected: str) -> None:
    assert round_price(D(price), D("0.01"), side) == D(expected)


def test_rounding_rejects_bad_grids() -> None:
    with pytest.raises(ValueError, match="step size"):
        round_qty(D("1"), D("0"))
    with pytest.raises(ValueError, match="tick size"):
        round_price(D("1"), D("-0.01"), "buy")
    with pytest.raises(ValueError, match="side"):
        round_price(D("1"), D("0.01"), "long")


def test_late_orders_on_bars_and_trades_fill_as_if_they_had_been_working() -> None:
    # The late path starts at the first kept event that ends at/after the decision; this checks it
    # picks the same fill as a working order would, for market and limit orders, bars and trades.
    prices = ["100", "98.5", "101", "97", "102", "99", "103", "96"]
    stream: list[Bar | Trade] = []
    for i, p in enumerate(prices):
        stream.append(bar(i, p, str(D(p) + 2), str(D(p) - 2), p))
        stream.append(trade(i, T0 + i * MIN + MIN // 2, p))
    orders = [order(coid="m"), order(coid="lb", limit="97.5"), order(coid="ls", side="sell", limit="101.5")]
    for decided in (T0, T0 + MIN // 2, T0 + 2 * MIN, T0 + 3 * MIN + 1):
        for placed in orders:
            early, late = venue(), venue()
            placed = msgspec.structs.replace(placed, ts_event=decided)
            early.submit(placed)
            expected = [f for md in stream for f in early.on_market(md)]
            for md in stream:
                late.on_market(md)
            assert fills(late.submit(placed)) == expected[:1], (placed.id, decided)


def test_a_size_no_market_has_is_rejected_and_never_modified_to() -> None:
    v = venue()
    v.on_bar(bar(0, "60000", "60000", "60000", "60000"))
    [rejected] = v.submit(order(qty="1000000000000", ts=T0 + MIN, limit="50000"))
    assert isinstance(rejected, OrderRejected) and "above the sanity cap" in rejected.reason
    v.submit(order(coid="c2", ts=T0 + MIN, limit="50000"))
    assert v.modify(ModifyOrder(id="m1", ts_event=T0 + MIN, client_order_id="c2", client="alice", venue="binance",
                                symbol="BTCUSDT", qty=D("1000000000000"))) == []
    assert v.working_orders() == ["c2"]


def test_maker_and_taker_fills_pay_their_own_fee() -> None:
    v = venue(fee_bps=D(10), maker_fee_bps=D(2), taker_fee_bps=D(5), slippage_bps=D(0))
    v.submit(order(coid="m", ts=T0, limit="99"))  # rests: a maker
    v.submit(order(coid="t", ts=T0))  # market: a taker
    maker, taker = sorted(fills(v.on_bar(bar(0, "100", "101", "98", "100"))), key=lambda f: f.liquidity)
    assert (maker.liquidity, maker.fee) == ("maker", D("0.0002") * D("0.5") * D("99"))
    assert (taker.liquidity, taker.fee) == ("taker", D("0.0005") * D("0.5") * D("100"))


def test_one_fee_for_both_when_maker_and_taker_are_not_set() -> None:
    v = venue(fee_bps=D(10), slippage_bps=D(0))
    v.submit(order(coid="m", ts=T0, limit="99"))
    [fill] = fills(v.on_bar(bar(0, "100", "101", "98", "100")))
    assert fill.fee == D("0.001") * D("0.5") * D("99")


def test_an_ioc_limit_gets_the_first_bar_after_it_and_nothing_more() -> None:
    for late in (False, True):  # working when the bar comes, or placed after it (looked back on)
        v = venue(slippage_bps=D(0))
        missed = msgspec.structs.replace(order(coid="ioc", ts=T0, limit="97"), time_in_force="IOC")
        taken = msgspec.structs.replace(order(coid="fok", ts=T0, limit="99"), time_in_force="FOK")
        first, second = bar(0, "100", "101", "98", "100"), bar(1, "100", "101", "95", "100")
        if late:
            v.on_bar(first)
            events = v.submit(missed) + v.submit(taken)
        else:
            events = v.submit(missed) + v.submit(taken) + list(v.on_bar(first))
        events += v.on_bar(second)  # would have filled the IOC order at 97: too late for it
        [canceled] = [e for e in events if isinstance(e, OrderCanceled)]
        assert canceled.client_order_id == "ioc" and canceled.reason.startswith("IOC/FOK"), late
        assert [(f.client_order_id, f.price) for f in fills(events)] == [("fok", D("99"))], late
        assert v.working_orders() == []


def test_post_only_never_takes_and_reduce_only_never_adds() -> None:
    v = venue(slippage_bps=D(0))
    v.on_bar(bar(0, "100", "101", "99", "100"))
    [rejected] = v.submit(msgspec.structs.replace(order(coid="p1", ts=T0 + MIN, limit="100.5"), post_only=True))
    assert isinstance(rejected, OrderRejected) and "post-only" in rejected.reason
    [accepted] = v.submit(msgspec.structs.replace(order(coid="p2", ts=T0 + MIN, limit="99.5"), post_only=True))
    assert isinstance(accepted, OrderAccepted)

    [refused] = v.submit(msgspec.structs.replace(order(coid="r1", side="sell", ts=T0 + MIN), reduce_only=True))
    assert isinstance(refused, OrderRejected) and "would increase the position 0" in refused.reason
    v.submit(order(coid="long", ts=T0 + MIN))
    v.on_bar(bar(1, "100", "101", "99.6", "100"))  # long 0.5 at 100; p2 (99.5) untouched
    trim = msgspec.structs.replace(order(coid="r2", side="sell", qty="2", ts=T0 + 2 * MIN), reduce_only=True)
    v.submit(trim)
    [fill] = fills(v.on_bar(bar(2, "100", "101", "99.6", "100")))
    assert (fill.client_order_id, fill.side, fill.qty) == ("r2", "sell", D("0.5"))  # trimmed to the position


# ----------------------------------------------------------------------------- the book model


def with_volume(b: Bar, volume: str) -> Bar:
    return msgspec.structs.replace(b, volume=D(volume))


def test_book_model_fills_a_large_order_over_several_bars_within_their_volume() -> None:
    v = venue(fill_model="book", bar_volume_share=D("0.1"), slippage_bps=D(0))
    v.submit(order(qty="2.5", ts=T0))
    got = [f for i, volume in enumerate(["10", "4", "30"])
           for f in fills(v.on_bar(with_volume(bar(i, str(100 + i), "110", "90", "100"), volume)))]
    assert [(f.qty, f.price) for f in got] == [(D("1"), D("100")), (D("0.4"), D("101")), (D("1.1"), D("102"))]
    assert sum(f.qty for f in got) == D("2.5") and v.working_orders() == []


def test_the_fill_model_and_latency_settings_refuse_what_no_venue_has_by_name() -> None:
    for field, value, message in (("bar_volume_share", "0", "bar_volume_share must be in (0, 1], got 0"),
                                  ("bar_volume_share", "1.5", "must be in (0, 1]"),
                                  ("bar_volume_share", "NaN", "bar_volume_share must be a finite number"),
                                  ("cancel_latency_ms", "-1", "cancel_latency_ms must be >= 0"),
                                  ("maker_fee_bps", "Infinity", "maker_fee_bps must be a finite number")):
        with pytest.raises(ValueError, match=re.escape(message)):
            VenueConfig(**{field: D(value)})
    assert VenueConfig(maker_fee_bps=D("-1")).maker_fee_bps == D("-1")  # a rebate


def test_book_model_late_orders_fill_as_if_they_had_been_working() -> None:
    bars = [with_volume(bar(i, p, str(D(p) + 2), str(D(p) - 2), p), vol)
            for i, (p, vol) in enumerate([("100", "3"), ("98.5", "1"), ("101", "8"), ("97", "2"), ("102", "5")])]
    for placed in (order(coid="m", qty="1.2"), order(coid="l", qty="1.2", limit="99.5")):
        for decided in (T0, T0 + MIN // 2, T0 + 2 * MIN):
            placed = msgspec.structs.replace(placed, ts_event=decided)
            early, late = venue(fill_model="book"), venue(fill_model="book")
            early.submit(placed)
            expected = [f for b in bars for f in fills(early.on_bar(b))]
            for b in bars:
                late.on_bar(b)
            assert fills(late.submit(placed)) == expected, (placed.id, decided)


def test_book_model_ioc_takes_what_traded_and_fok_all_or_nothing() -> None:
    v = venue(fill_model="book", slippage_bps=D(0))
    v.submit(msgspec.structs.replace(order(coid="ioc", qty="1", ts=T0), time_in_force="IOC"))
    v.submit(msgspec.structs.replace(order(coid="fok", qty="1", ts=T0), time_in_force="FOK"))
    events = v.on_bar(with_volume(bar(0, "100", "101", "99", "100"), "5"))  # 0.5 of each may trade
    assert [(f.client_order_id, f.qty) for f in fills(events)] == [("ioc", D("0.5"))]
    assert sorted(e.client_order_id for e in events if isinstance(e, OrderCanceled)) == ["fok", "ioc"]
    assert v.working_orders() == []


def test_an_order_is_acknowledged_once_it_reached_the_venue_after_its_submit_latency() -> None:
    def acked(v: ShadowVenue, o: SubmitOrder) -> int:
        [accepted] = [e for e in v.submit(o) if isinstance(e, OrderAccepted)]
        return accepted.ts_event - o.ts_event

    assert acked(venue(), order()) == 0  # no latency: at its decision
    assert acked(venue(submit_latency_ms=D(250)), order()) == 250_000_000
    jittery = venue(submit_latency_ms=D(250), latency_jitter_ms=D(100))
    waits = [acked(jittery, order(coid=f"c{n}")) for n in range(20)]
    assert all(250_000_000 <= w < 350_000_000 for w in waits) and len(set(waits)) > 1
    assert waits == [acked(venue(submit_latency_ms=D(250), latency_jitter_ms=D(100)), order(coid=f"c{n}"))
                     for n in range(20)]  # drawn from the order's id: the same in every run


def test_submit_latency_keeps_an_order_off_the_market_data_before_it_reaches_the_venue() -> None:
    v = venue(slippage_bps=D(0), submit_latency_ms=D(30_000))  # at the venue 30 s after bar 1 opened
    v.submit(order(ts=T0 + MIN))
    assert fills(v.on_bar(bar(1, "101", "102", "100", "101"))) == []
    [fill] = fills(v.on_bar(bar(2, "102", "103", "101", "102")))
    assert fill.price == D("102")
