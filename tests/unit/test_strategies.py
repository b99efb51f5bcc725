"""SmaCross against hand arithmetic, build_strategy's errors, and the sizing helpers."""

from __future__ import annotations

import random
from decimal import Decimal, localcontext
from fractions import Fraction

import pytest

from bosun.model.grid import round_qty, round_to_tick
from proto.events import Bar
from services.signal.config import SizingConfig
from services.signal.sizing import (price_distance, stdev_of_returns, stop_loss_price, take_profit_price,
                                    target_qty)
from services.signal.strategies import SmaCross, StrategyError, build_strategy

D = Decimal


def bar(i: int, close: str | Decimal, symbol: str = "BTCUSDT") -> Bar:
    c = D(close)
    return Bar(id=f"binance.{symbol}.1m.{i}", ts_event=(i + 1) * 60_000_000_000, venue="binance", symbol=symbol,
               interval="1m", ts_open=i * 60_000_000_000, open=c, high=c, low=c, close=c, volume=D(1))


def run(strategy, closes) -> list[int | None]:
    return [strategy.on_bar(bar(i, c)) for i, c in enumerate(closes)]


# Hand arithmetic, fast=2 slow=4:
#   bar 3: fast (10+10)/2=10    slow 40/4=10     equal       -> None
#   bar 4: fast (10+11)/2=10.5  slow 41/4=10.25  fast > slow -> +1
#   bar 5: fast (11+12)/2=11.5  slow 43/4=10.75              -> +1
#   bar 6: fast (12+9)/2=10.5   slow 42/4=10.5   equal       -> None
#   bar 7: fast (9+8)/2=8.5     slow 40/4=10     fast < slow -> -1 (0 long-only)
#   bar 8: fast (8+13)/2=10.5   slow 42/4=10.5   equal       -> None
CLOSES = ["10", "10", "10", "10", "11", "12", "9", "8", "13"]


def test_sma_cross_long_short_matches_hand_arithmetic() -> None:
    assert run(SmaCross(2, 4), CLOSES) == [None, None, None, None, 1, 1, None, -1, None]


def test_sma_cross_long_only_goes_flat_instead_of_short() -> None:
    assert run(SmaCross(2, 4, long_only=True), CLOSES) == [None, None, None, None, 1, 1, None, 0, None]


def test_no_signal_before_slow_bars_even_when_fast_is_ready() -> None:
    # fast (2 bars) is ready at bar 1 and the closes rise, but slow needs 4 bars
    assert run(SmaCross(2, 4), ["1", "2", "3"]) == [None, None, None]


def test_equality_is_exact_where_binary_floats_are_not() -> None:
    # fast=2 slow=3: (b+c)/2 == (a+b+c)/3 exactly when b+c == 2a; 0.1+0.3 == 2*0.2
    assert (0.1 + 0.3) / 2 != (0.2 + 0.1 + 0.3) / 3  # binary floats would not call them equal
    assert run(SmaCross(2, 3), ["0.2", "0.1", "0.3"]) == [None, None, None]
    assert run(SmaCross(2, 3), ["0.2", "0.1", "0.30000001"]) == [None, None, 1]


def test_equality_is_exact_whatever_the_ambient_decimal_precision() -> None:
    # 32 significant digits, more than the default context's 28: b + c == 2a exactly
    a, b, c = (D("12345678901234567890.123456789012"), D("12345678901234567890.123456789011"),
               D("12345678901234567890.123456789013"))
    with localcontext() as ctx:
        ctx.prec = 6
        assert run(SmaCross(2, 3), [a, b, c]) == [None, None, None]


def test_rolling_sums_agree_with_brute_force_on_a_long_series() -> None:
    rng = random.Random(7)
    closes = [D(f"{60000 + rng.randint(-500, 500) / 100:.2f}") for _ in range(3000)]
    fast, slow = 5, 20
    got = run(SmaCross(fast, slow), closes)
    for i, direction in enumerate(got):
        if i + 1 < slow:
            assert direction is None
            continue
        f = Fraction(sum(closes[i + 1 - fast:i + 1])) / fast
        s = Fraction(sum(closes[i + 1 - slow:i + 1])) / slow
        assert direction == (1 if f > s else -1 if f < s else None), f"bar {i}"


@pytest.mark.parametrize(("fast", "slow", "named"), [
    (0, 4, "'fast'"), (2, -1, "'slow'"), (True, 4, "'fast'"), (2.0, 4, "'fast'"),
    (4, 4, r"'fast' \(4\) must be smaller"),
    (5, 3, r"'slow' \(3\)"),
])
def test_sma_cross_rejects_bad_windows_naming_the_parameter(fast, slow, named) -> None:
    with pytest.raises(StrategyError, match=named):
        SmaCross(fast, slow)


# ----------------------------------------------------------------------------- build_strategy


class Breakout:
    """A plug-in strategy for the import-path test: no long_only, a Decimal parameter."""

    def __init__(self, level: Decimal, note: str = "") -> None:
        self.level = level
        self.note = note

    def on_bar(self, bar: Bar) -> int | None:
        return 1 if bar.close > self.level else None


class NoOnBar:
    def __init__(self) -> None:
        pass


def test_build_registered_sma_cross_passes_long_only() -> None:
    strategy = build_strategy("sma_cross", {"fast": 2, "slow": 4}, long_only=True)
    assert isinstance(strategy, SmaCross) and strategy.long_only
    assert run(strategy, CLOSES)[7] == 0


def test_unknown_kind_lists_the_known_ones() -> None:
    with pytest.raises(StrategyError, match=r"unknown strategy 'rsi'.*sma_cross"):
        build_strategy("rsi", {}, long_only=False)


def test_unknown_parameter_is_named_with_what_is_accepted() -> None:
    with pytest.raises(StrategyError, match=r"no parameter 'fsat'; it accepts fast: int, slow: int"):
        build_strategy("sma_cross", {"fsat": 2, "slow": 4}, long_only=False)


def test_wrong_typed_parameter_is_named_with_its_type() -> None:
    with pytest.raises(StrategyError, match=r"parameter 'fast' must be int, got 'ten'"):
        build_strategy("sma_cross", {"fast": "ten", "slow": 4}, long_only=False)
    with pytest.raises(StrategyError, match=r"parameter 'slow' must be int, got 4.5"):
        build_strategy("sma_cross", {"fast": 2, "slow": 4.5}, long_only=False)


def test_missing_and_invalid_values_are_named() -> None:
    with pytest.raises(StrategyError, match=r"needs parameter\(s\) 'slow'"):
        build_strategy("sma_cross", {"fast": 2}, long_only=False)
    with pytest.raises(StrategyError, match=r"'fast' \(9\) must be smaller than 'slow' \(4\)"):
        build_strategy("sma_cross", {"fast": 9, "slow": 4}, long_only=False)
    with pytest.raises(StrategyError, match="long_only on the"):
        build_strategy("sma_cross", {"fast": 2, "slow": 4, "long_only": True}, long_only=False)


def test_import_path_strategy_is_built_with_coerced_params_and_without_long_only() -> None:
    strategy = build_strategy("tests.unit.test_strategies:Breakout", {"level": "100.5"}, long_only=True)
    assert isinstance(strategy, Breakout)
    assert strategy.level == D("100.5") and isinstance(strategy.level, Decimal)
    assert strategy.on_bar(bar(0, "101")) == 1
    with pytest.raises(StrategyError, match=r"'level' must be a number \(Decimal\), got 'high'"):
        build_strategy("tests.unit.test_strategies:Breakout", {"level": "high"}, long_only=False)
    with pytest.raises(StrategyError, match=r"no parameter 'fast'; it accepts level: a number \(Decimal\), note: str"):
        build_strategy("tests.unit.test_strategies:Breakout", {"level": 1, "fast": 2}, long_only=False)


def test_import_path_errors_name_the_module_or_class() -> None:
    with pytest.raises(StrategyError, match="cannot import module 'no_such_pkg.mod'"):
        build_strategy("no_such_pkg.mod:Thing", {}, long_only=False)
    with pytest.raises(StrategyError, match="has no class 'Missing'"):
        build_strategy("tests.unit.test_strategies:Missing", {}, long_only=False)
    with pytest.raises(StrategyError, match=r"NoOnBar has no on_bar\(bar\) method"):
        build_strategy("tests.unit.test_strategies:NoOnBar", {}, long_only=False)


# ----------------------------------------------------------------------------- sizing


def test_round_qty_rounds_toward_zero() -> None:
    assert round_qty(D("0.123456"), D("0.001")) == D("0.123")
    assert round_qty(D("-0.123456"), D("0.001")) == D("-0.123")
    assert round_qty(D("1.74"), D("0.5")) == D("1.5")  # steps that are not powers of ten
    assert round_qty(D("0.0009"), D("0.001")) == 0
    assert str(round_qty(D("-0.0009"), D("0.001"))) == "0.000"  # no "-0"
    assert round_qty(D("0.3"), D("0.1")) == D("0.3")  # exact multiples stay
    with pytest.raises(ValueError, match="step size must be a positive number"):
        round_qty(D(1), D(0))


def _unmarked() -> D:
    raise AssertionError("fixed sizing must not mark equity")


def test_fixed_sizing_is_direction_times_qty_without_marking_equity() -> None:
    fixed = SizingConfig(kind="fixed", qty=D("0.25"))
    kw = dict(equity=_unmarked, price=D(60000), step_size=D("0.001"))
    assert [target_qty(d, fixed, **kw) for d in (1, -1, 0)] == [D("0.25"), D("-0.25"), 0]


def test_equity_fraction_sizing_floors_to_step() -> None:
    sizing = SizingConfig(kind="equity_fraction", fraction=D("0.5"))
    # 0.5 * 10000 / 60000 = 0.08333... -> 0.083 at step 0.001
    assert target_qty(1, sizing, equity=lambda: D(10000), price=D(60000), step_size=D("0.001")) == D("0.083")
    assert target_qty(-1, sizing, equity=lambda: D(10000), price=D(60000), step_size=D("0.001")) == D("-0.083")
    assert target_qty(1, sizing, equity=lambda: D(-5), price=D(60000), step_size=D("0.001")) == 0  # never flips side
    with pytest.raises(ValueError, match="direction must be -1, 0 or \\+1"):
        target_qty(2, sizing, equity=lambda: D(1), price=D(1), step_size=D(1))


def test_stdev_and_protective_prices() -> None:
    # returns 0 and 0.1: mean 0.05, sample variance 2 * 0.05^2 / 1 = 0.005
    sigma = stdev_of_returns([D(100), D(100), D(110)])
    assert abs(sigma - D("0.005").sqrt()) < D("1e-16")
    assert stdev_of_returns([D(100), D(110)]) is None
    distance = price_distance(D(2), sigma, D(110))  # 2 * 0.0707106... * 110 = 15.5563...
    assert stop_loss_price(1, D(110), distance, D("0.01")) == D("94.44")
    assert stop_loss_price(-1, D(110), distance, D("0.01")) == D("125.56")
    assert take_profit_price(1, D(110), distance, D("0.5")) == D("125.5")
    assert take_profit_price(-1, D(110), distance, D("0.01")) == D("94.44")
    assert stop_loss_price(0, D(110), distance, D("0.01")) is None
    assert stop_loss_price(1, D(110), None, D("0.01")) is None
    assert price_distance(None, sigma, D(110)) is None
    assert stop_loss_price(1, D(10), D(20), D("0.01")) is None  # a long's stop below zero is no stop


def test_round_to_tick_is_half_even() -> None:
    assert round_to_tick(D("100.005"), D("0.01")) == D("100.00")
    assert round_to_tick(D("100.015"), D("0.01")) == D("100.02")
    assert round_to_tick(D("100.25"), D("0.5")) == D("100.0")
    assert round_to_tick(D("100.75"), D("0.5")) == D("101.0")


def test_closes_with_more_decimals_later_rescale_and_stay_exact() -> None:
    # The integer windows change unit when a close has more decimals than any before it.
    rng = random.Random(5)
    closes = [D(rng.randint(90, 110)) for _ in range(40)]  # whole numbers first
    closes += [D(f"{rng.randint(9000, 11000) / 100:.2f}") for _ in range(40)]
    closes += [D(rng.randint(900_000, 1_100_000)) / D(8000) for _ in range(40)]  # x.yyyyyy, /8 and /1000
    closes += [D("100.5"), D("1E+2"), D("99.999999999999"), D("100.0000")] * 10
    fast, slow = 3, 7
    got = run(SmaCross(fast, slow), closes)
    for i, direction in enumerate(got):
        if i + 1 < slow:
            continue
        f = Fraction(sum(closes[i + 1 - fast:i + 1])) / fast
        s = Fraction(sum(closes[i + 1 - slow:i + 1])) / slow
        assert direction == (1 if f > s else -1 if f < s else None), f"bar {i}"
