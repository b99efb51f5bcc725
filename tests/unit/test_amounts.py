"""Decoding refuses numbers an event may not carry (proto.amounts): NaN, sNaN, infinities, zero or
negative magnitudes and values past the sanity caps, naming the event type, field and value."""

from __future__ import annotations

import typing
from decimal import Decimal

import msgspec
import pytest

from proto import amounts, codec
from proto import events as ev

D = Decimal
NON_FINITE = ["NaN", "-NaN", "nan", "sNaN", "-sNaN", "Infinity", "-Infinity", "inf"]


def fill(**changes: object) -> ev.OrderFilled:
    base = ev.OrderFilled(id="f1", ts_event=1, client_order_id="o1", client="demo", venue="binance",
                          symbol="BTCUSDT", side="buy", qty=D("0.01"), price=D("60000"), fee=D("0.6"))
    return msgspec.structs.replace(base, **changes)


def target(qty: str = "0.5", price: str = "60000", **changes: object) -> ev.TargetPosition:
    base = ev.TargetPosition(id="t1", ts_event=1, client="demo", venue="binance", symbol="BTCUSDT", qty=D(qty),
                             strategy="sma", price=D(price))
    return msgspec.structs.replace(base, **changes)


def bar(**changes: object) -> ev.Bar:
    base = ev.Bar(id="b1", ts_event=60, venue="binance", symbol="BTCUSDT", interval="1m", ts_open=0,
                  open=D(1), high=D(2), low=D(1), close=D(2), volume=D(0))
    return msgspec.structs.replace(base, **changes)


def refused(event: ev.Event) -> str:
    data = codec.encode(event)
    with pytest.raises(amounts.AmountError) as typed:
        codec.decode(data, type(event))
    with pytest.raises(amounts.AmountError) as untyped:
        codec.decode_any(data)
    assert str(typed.value) == str(untyped.value)
    return str(typed.value)


@pytest.mark.parametrize("text", NON_FINITE)
@pytest.mark.parametrize("field", ["qty", "price", "fee"])
def test_a_fill_with_a_non_finite_amount_is_refused_naming_the_field(field: str, text: str) -> None:
    reason = refused(fill(**{field: D(text)}))
    assert reason.startswith(f"OrderFilled.{field} = ") and "is not a finite number" in reason
    assert str(D(text)) in reason


@pytest.mark.parametrize("text", NON_FINITE)
def test_a_non_finite_target_is_refused_naming_the_field(text: str) -> None:
    assert refused(target(qty=text)) == f"TargetPosition.qty = {D(text)} is not a finite number (signed quantity)"


@pytest.mark.parametrize("text", ["0", "-0", "-0.01"])
def test_a_fill_qty_or_price_must_be_positive(text: str) -> None:
    assert refused(fill(qty=D(text))) == f"OrderFilled.qty = {D(text)} must be > 0 (quantity)"
    assert refused(fill(price=D(text))) == f"OrderFilled.price = {D(text)} must be > 0 (price)"


def test_signed_amounts_may_be_negative_and_a_close_order_zero() -> None:
    for event in (target(qty="-0.5"), fill(fee=D("-0.1")),  # a short target; a maker rebate
                  ev.SubmitOrder(id="o", ts_event=1, client="demo", venue="binance", symbol="BTCUSDT", side="sell",
                                 qty=D(0), order_type="stop_market", stop_price=D(50000), close_position=True,
                                 target_id="t1"),
                  bar(volume=D(0))):
        assert codec.decode(codec.encode(event), type(event)) == event


def test_a_negative_volume_is_refused_but_a_large_one_is_not() -> None:
    assert refused(bar(volume=D(-1))) == "Bar.volume = -1 must be >= 0 (volume)"
    assert codec.decode(codec.encode(bar(volume=D("1e13"))), ev.Bar).volume == D("1e13")  # a day of SHIB


def test_an_absurd_target_is_refused_by_its_notional() -> None:
    reason = refused(target(qty="1e12"))
    assert reason == ("TargetPosition notional qty x price = 1E+12 x 60000 = 6.000000E+16 is above the sanity cap "
                      "of 1E+11 (quote currency)")
    assert "-1E+12" not in refused(target(qty="-1e12"))  # |qty|: a short is as big
    assert codec.decode(codec.encode(target(qty="1e6", price="1e5")), ev.TargetPosition)  # 1e11: the cap itself


def test_quantities_and_prices_past_their_caps_are_refused() -> None:
    assert refused(target(qty="1.1e15", price="1e-9")) == \
        "TargetPosition.qty = 1.1E+15 is above the sanity cap of 1E+15 (signed quantity)"
    assert refused(bar(high=D("2e12"))) == "Bar.high = 2E+12 is above the sanity cap of 1E+12 (price)"
    assert refused(fill(fee=D("-1e15"))) == "OrderFilled.fee = -1E+15 is above the sanity cap of 1E+14 (money)"


def test_a_value_with_more_digits_than_a_context_keeps_is_compared_exactly() -> None:
    # 1e15 plus 1e-15: 31 digits, which abs() in a 28-digit context rounds onto the cap
    assert refused(target(qty="1000000000000000.000000000000001", price="1e-9")) == \
        "TargetPosition.qty = 1000000000000000.000000000000001 is above the sanity cap of 1E+15 (signed quantity)"
    # 1e6 plus 1e-22 times 1e5: a notional of 1e11 plus 1e-17, which a 28-digit product rounds onto the cap
    assert refused(target(qty="1000000.0000000000000000000001", price="1e5")).startswith(
        "TargetPosition notional qty x price = 1000000.0000000000000000000001 x 1E+5 = 1.000000E+11 is above")


def test_an_event_inside_an_event_is_checked() -> None:
    approved = ev.TargetApproved(id="t1", ts_event=1, target=target(qty="sNaN"))
    with pytest.raises(amounts.AmountError, match=r"TargetPosition\.qty = sNaN"):
        codec.decode(codec.encode(approved), ev.TargetApproved)


def test_optional_amounts_are_checked_when_set() -> None:
    assert refused(target(stop_loss=D("-5"))) == "TargetPosition.stop_loss = -5 must be > 0 (price)"
    snapshot = ev.PriceSnapshot(id="p", ts_event=1, venue="binance", symbol="BTCUSDT", price=D(1), open=D("NaN"))
    assert refused(snapshot) == "PriceSnapshot.open = NaN is not a finite number (price)"


def test_a_float_on_the_wire_is_still_checked() -> None:
    # A hand-made message: msgpack floats, NaN among them, where a decimal string belongs.
    data = msgspec.msgpack.encode({**msgspec.structs.asdict(fill()), "type": "OrderFilled", "qty": float("nan")})
    with pytest.raises(amounts.AmountError, match=r"OrderFilled\.qty = NaN"):
        codec.decode(data, ev.OrderFilled)


def test_every_decimal_field_of_every_event_declares_its_kind() -> None:
    def kinds(cls: type) -> typing.Iterator[type]:
        for sub in cls.__subclasses__():
            yield sub
            yield from kinds(sub)

    checked = 0
    for kind in kinds(ev.Event):
        hints = typing.get_type_hints(kind)
        decimals = [f for f in kind.__struct_fields__ if Decimal in (typing.get_args(hints[f]) or (hints[f],))]
        declared = {name for name, _ in amounts._rules(kind).fields}
        assert set(decimals) == declared, kind.__name__
        checked += len(decimals)
    assert checked > 30
