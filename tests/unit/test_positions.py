"""Position accounting, checked against hand arithmetic in exact Decimals."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.portfolio.positions import Position


def test_open_long_sets_qty_avg_price_and_fees():
    p = Position()
    assert p.apply_fill("buy", D("2"), D("100"), D("0.2")) == 0
    assert (p.qty, p.avg_price, p.realized_pnl, p.fees) == (D(2), D(100), D(0), D("0.2"))


def test_adding_averages_the_entry_price():
    p = Position()
    p.apply_fill("buy", D("2"), D("100"), D("0"))
    p.apply_fill("buy", D("1"), D("103"), D("0"))
    assert p.qty == D(3)
    assert p.avg_price == D(101)  # (200 + 103) / 3
    assert p.unrealized(D(110)) == D(27)  # (110 - 101) * 3


def test_partial_close_realizes_at_avg_price_and_keeps_it():
    p = Position()
    p.apply_fill("buy", D("2"), D("100"), D("0.1"))
    p.apply_fill("buy", D("1"), D("103"), D("0.1"))
    assert p.apply_fill("sell", D("1"), D("110"), D("0.1")) == D(9)  # (110 - 101) * 1
    assert (p.qty, p.avg_price, p.realized_pnl, p.fees) == (D(2), D(101), D(9), D("0.3"))
    assert p.apply_fill("sell", D("2"), D("99"), D("0.1")) == D(-4)  # (99 - 101) * 2
    assert (p.qty, p.avg_price, p.realized_pnl, p.fees) == (D(0), D(0), D(5), D("0.4"))
    assert p.unrealized(D(500)) == 0


def test_closes_add_up_exactly_when_the_average_price_does_not_terminate():
    p = Position()
    p.apply_fill("buy", D("1"), D("10"), D("0"))
    p.apply_fill("buy", D("2"), D("11"), D("0"))  # avg 32/3
    assert p.avg_price == D("10.66666666666666666666666666666667")
    p.apply_fill("sell", D("1"), D("12"), D("0"))
    p.apply_fill("sell", D("2"), D("12"), D("0"))
    assert p.realized_pnl == D(4)  # 36 - 32, not 3.99999...
    assert p.qty == 0


def test_flip_closes_old_side_at_avg_and_opens_rest_at_fill_price():
    p = Position()
    p.apply_fill("buy", D("1"), D("100"), D("0"))
    assert p.apply_fill("sell", D("3"), D("90"), D("0.27")) == D(-10)  # (90 - 100) * 1
    assert (p.qty, p.avg_price, p.realized_pnl, p.fees) == (D(-2), D(90), D(-10), D("0.27"))
    assert p.unrealized(D(80)) == D(20)  # a short gains as the price falls
    assert p.unrealized(D(95)) == D(-10)


def test_short_round_trip():
    p = Position()
    p.apply_fill("sell", D("2"), D("50"), D("0.1"))
    assert (p.qty, p.avg_price) == (D(-2), D(50))
    p.apply_fill("sell", D("2"), D("60"), D("0.1"))
    assert p.avg_price == D(55)
    assert p.apply_fill("buy", D("4"), D("45"), D("0.1")) == D(40)  # (55 - 45) * 4
    assert (p.qty, p.realized_pnl, p.fees) == (D(0), D(40), D("0.3"))


def test_restored_position_equals_the_original():
    p = Position()
    p.apply_fill("buy", D("3"), D("101.5"), D("0.3"))
    p.apply_fill("sell", D("1"), D("110"), D("0.1"))
    restored = Position(p.qty, p.avg_price, p.realized_pnl, p.fees)
    assert restored == p
    assert restored.unrealized(D(120)) == p.unrealized(D(120)) == D(37)  # (120 - 101.5) * 2


@pytest.mark.parametrize(("side", "qty", "price", "fee", "named"), [
    ("hold", D(1), D(1), D(0), "side"),
    ("buy", D(0), D(1), D(0), "qty"),
    ("buy", D(-1), D(1), D(0), "qty"),
    ("sell", D(1), D(0), D(0), "price"),
    ("sell", D(1), D("NaN"), D(0), "price"),
    ("sell", D(1), D(1), D("Infinity"), "fee"),
])
def test_bad_fill_is_refused_naming_the_parameter_and_changes_nothing(side, qty, price, fee, named):
    p = Position()
    p.apply_fill("buy", D(1), D(10), D("0.01"))
    with pytest.raises(ValueError, match=named):
        p.apply_fill(side, qty, price, fee)
    assert p == Position(D(1), D(10), D(0), D("0.01"))


fills = st.lists(st.tuples(st.sampled_from(["buy", "sell"]),
                           st.decimals(min_value=D("0.00001"), max_value=D(50), places=5),
                           st.decimals(min_value=D("0.01"), max_value=D(100000), places=2)),
                 min_size=1, max_size=30)


@given(fills)
def test_once_flat_realized_pnl_is_exactly_the_cash_flow(sequence):
    p = Position()
    cash = D(0)
    for side, qty, price in sequence:
        p.apply_fill(side, qty, price, D(0))
        cash += qty * price if side == "sell" else -qty * price
    # Close whatever is left at the last price: then the realized pnl is the cash flow.
    last = sequence[-1][2]
    if p.qty:
        closing = abs(p.qty)
        cash += closing * last if p.qty > 0 else -closing * last
        p.apply_fill("sell" if p.qty > 0 else "buy", closing, last, D(0))
    assert p.qty == 0
    assert p.realized_pnl == cash


def test_results_keep_the_digits_exponent_and_sign_of_zero_of_exact_arithmetic():
    p = Position()
    p.apply_fill("sell", D("0.50"), D("100.0"), D("0"))
    assert [str(p.unrealized(D("100"))), str(p.unrealized(D("99.5")))] == ["0.000", "0.250"]
    assert str(p.apply_fill("buy", D("0.5"), D("100.00"), D("0"))) == "-0.000"  # 0 x -1: a negative zero
    assert [str(p.realized_pnl), str(p.qty)] == ["0.000", "0.00"]
    q = Position()
    q.apply_fill("buy", D("1.0"), D("10"), D("0"))
    assert [str(q.apply_fill("sell", D("1"), D("10.0"), D("0"))), str(q.qty)] == ["0.0", "0.0"]
