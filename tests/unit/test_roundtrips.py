"""Round trips, checked against hand arithmetic in exact Decimals."""

from __future__ import annotations

from decimal import Decimal as D
from itertools import count

from hypothesis import given
from hypothesis import strategies as st

from proto.events import OrderFilled
from services.portfolio.positions import Position
from services.portfolio.roundtrips import RoundTrip, RoundTripTracker

S = 1_000_000_000  # ns per second
_ids = count(1)


def fill(side: str, qty: str, price: str, fee: str = "0", *, t: int = 0, reason: str = "signal",
         symbol: str = "BTCUSDT") -> OrderFilled:
    n = next(_ids)
    return OrderFilled(id=f"f{n}", ts_event=t * S, client_order_id=f"o{n}", client="alice", venue="binance",
                       symbol=symbol, side=side, qty=D(qty), price=D(price), fee=D(fee), reason=reason)


def test_long_round_trip():
    tracker = RoundTripTracker()
    opening = fill("buy", "2", "100", "0.2", t=0)
    assert tracker.on_fill(opening) == []
    closing = fill("sell", "2", "110", "0.22", t=60, reason="take_profit")
    [trip] = tracker.on_fill(closing)
    assert (trip.side, trip.qty, trip.entry_price, trip.exit_price) == ("long", D(2), D(100), D(110))
    assert trip.fees == D("0.42")
    assert trip.pnl == D("19.58")  # (110 - 100) * 2 - 0.42
    assert trip.return_pct == D("9.79")  # 19.58 / 200 * 100
    assert (trip.entry_time_ns, trip.exit_time_ns, trip.duration_s) == (0, 60 * S, 60.0)
    assert trip.exit_reason == "take_profit"
    assert (trip.entry_fill_id, trip.exit_fill_id) == (opening.id, closing.id)
    assert (trip.client, trip.venue, trip.symbol) == ("alice", "binance", "BTCUSDT")
    assert tracker.open_round_trips() == []


def test_short_round_trip():
    tracker = RoundTripTracker()
    tracker.on_fill(fill("sell", "1", "50", "0.05", t=10))
    [trip] = tracker.on_fill(fill("buy", "1", "40", "0.04", t=70, reason="stop_loss"))
    assert (trip.side, trip.qty, trip.entry_price, trip.exit_price) == ("short", D(1), D(50), D(40))
    assert trip.fees == D("0.09")
    assert trip.pnl == D("9.91")  # (40 - 50) * 1 * -1 - 0.09
    assert trip.return_pct == D("19.82")  # 9.91 / 50 * 100
    assert trip.duration_s == 60.0
    assert trip.exit_reason == "stop_loss"


def test_losing_short():
    tracker = RoundTripTracker()
    tracker.on_fill(fill("sell", "2", "100"))
    [trip] = tracker.on_fill(fill("buy", "2", "105"))
    assert trip.pnl == D(-10)
    assert trip.return_pct == D(-5)


def test_flip_is_one_fill_that_closes_one_round_trip_and_opens_the_next_splitting_its_fee():
    tracker = RoundTripTracker()
    tracker.on_fill(fill("buy", "1", "100", "0.1", t=0))
    flip = fill("sell", "2", "110", "0.22", t=30, reason="signal")
    [long_trip] = tracker.on_fill(flip)
    assert long_trip.side == "long"
    assert long_trip.fees == D("0.21")  # 0.1 entry + half of the flip's 0.22
    assert long_trip.pnl == D("9.79")  # (110 - 100) * 1 - 0.21
    assert long_trip.exit_fill_id == flip.id

    [running] = tracker.open_round_trips()
    assert (running.side, running.qty, running.open_qty, running.entry_price) == ("short", D(1), D(1), D(110))
    assert running.fees == D("0.11")  # the flip's other half
    assert (running.entry_time_ns, running.entry_fill_id) == (30 * S, flip.id)

    [short_trip] = tracker.on_fill(fill("buy", "1", "105", "0.105", t=90, reason="stop_loss"))
    assert (short_trip.side, short_trip.entry_price, short_trip.exit_price) == ("short", D(110), D(105))
    assert short_trip.fees == D("0.215")  # 0.11 + 0.105
    assert short_trip.pnl == D("4.785")  # (105 - 110) * 1 * -1 - 0.215
    assert (short_trip.entry_time_ns, short_trip.duration_s, short_trip.exit_reason) == (30 * S, 60.0, "stop_loss")


def test_uneven_flip_splits_the_fee_by_quantity():
    tracker = RoundTripTracker()
    tracker.on_fill(fill("buy", "1", "100"))
    [closed] = tracker.on_fill(fill("sell", "4", "100", "0.4"))
    assert closed.fees == D("0.1")  # 1 of 4
    [reopened] = tracker.on_fill(fill("buy", "3", "100"))
    assert reopened.fees == D("0.3")  # 3 of 4
    assert reopened.qty == D(3)


def test_flip_fee_shares_add_up_to_the_fee_when_they_do_not_divide_evenly():
    tracker = RoundTripTracker()
    tracker.on_fill(fill("buy", "1", "100"))
    [first] = tracker.on_fill(fill("sell", "3", "100", "0.01"))
    [second] = tracker.on_fill(fill("buy", "2", "100"))
    assert first.fees == D("0.003333333333333333")  # 0.01 / 3, rounded to 1e-18
    assert first.fees + second.fees == D("0.01")


def test_partial_closes_and_adds_stay_one_round_trip_until_flat():
    tracker = RoundTripTracker()
    assert tracker.on_fill(fill("buy", "2", "100", "0.2", t=0)) == []
    assert tracker.on_fill(fill("sell", "1", "110", "0.11", t=10)) == []
    [running] = tracker.open_round_trips()
    assert (running.qty, running.open_qty, running.exit_qty) == (D(2), D(1), D(1))
    assert tracker.on_fill(fill("buy", "1", "90", "0.09", t=20)) == []  # add after a partial close
    [trip] = tracker.on_fill(fill("sell", "2", "100", "0.2", t=40, reason="end_of_data"))
    assert trip.qty == D(3)  # entered in total
    assert trip.entry_price == D("96.66666666666666666666666666666667")  # (200 + 90) / 3
    assert trip.exit_price == D("103.3333333333333333333333333333333")  # (110 + 200) / 3
    assert trip.fees == D("0.6")
    assert trip.pnl == D("19.4")  # exactly 310 - 290 - 0.6
    assert trip.return_pct == D("6.689655172413793103448275862068966")  # 19.4 / 290 * 100
    assert (trip.duration_s, trip.exit_reason) == (40.0, "end_of_data")


def test_symbols_are_tracked_separately():
    tracker = RoundTripTracker()
    tracker.on_fill(fill("buy", "1", "100", symbol="BTCUSDT"))
    assert tracker.on_fill(fill("sell", "1", "10", symbol="ETHUSDT")) == []
    assert {(t.symbol, t.side) for t in tracker.open_round_trips()} == {("BTCUSDT", "long"), ("ETHUSDT", "short")}
    [trip] = tracker.on_fill(fill("sell", "1", "101", symbol="BTCUSDT"))
    assert (trip.symbol, trip.pnl) == ("BTCUSDT", D(1))


fills = st.lists(st.tuples(st.sampled_from(["buy", "sell"]),
                           st.decimals(min_value=D("0.001"), max_value=D(10), places=3),
                           st.decimals(min_value=D("0.01"), max_value=D(1000), places=2),
                           st.decimals(min_value=D(0), max_value=D(1), places=4)),
                 min_size=1, max_size=20)


@given(fills)
def test_round_trips_account_for_every_pnl_and_fee_of_the_position(sequence):
    tracker, position, trips = RoundTripTracker(), Position(), []
    for side, qty, price, fee in sequence:
        f = fill(side, str(qty), str(price), str(fee))
        position.apply_fill(f.side, f.qty, f.price, f.fee)
        trips += tracker.on_fill(f)
    if position.qty:  # close the rest so that every fill belongs to a closed round trip
        f = fill("sell" if position.qty > 0 else "buy", str(abs(position.qty)), str(sequence[-1][2]), "0")
        position.apply_fill(f.side, f.qty, f.price, f.fee)
        trips += tracker.on_fill(f)
    assert tracker.open_round_trips() == []
    assert sum(t.fees for t in trips) == position.fees
    assert sum(t.pnl for t in trips) == position.realized_pnl - position.fees


def test_results_keep_the_digits_exponent_and_sign_of_zero_of_exact_arithmetic():
    tracker = RoundTripTracker()
    tracker.on_fill(fill("sell", "1.0", "100"))
    [short] = tracker.on_fill(fill("buy", "2", "100.0"))
    assert [str(short.pnl), str(short.return_pct), str(short.entry_price), str(short.exit_price), str(short.fees)] == [
        "-0E-18", "-0E-17", "100", "100.0", "0E-18"]  # gross 0 x -1: a negative zero
    [long] = tracker.on_fill(fill("sell", "1", "100"))
    assert [str(long.pnl), str(long.return_pct), str(long.qty), str(long.fees)] == ["0E-18", "0E-16", "1.0", "0E-18"]


def test_round_trip_fields_keep_the_order_close_builds_them_in():
    # _Running.close builds a RoundTrip positionally (faster): reorder the fields there too.
    assert RoundTrip.__struct_fields__ == (
        "entry_time_ns", "exit_time_ns", "symbol", "venue", "client", "side", "qty", "entry_price", "exit_price",
        "fees", "pnl", "return_pct", "duration_s", "exit_reason", "entry_fill_id", "exit_fill_id")
