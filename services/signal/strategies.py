"""Strategies: pure, bar-by-bar direction generators, and the factory that builds one
from a [[strategies]] entry (a registered kind or an import path `package.module:Class`)."""

from __future__ import annotations

import importlib
import inspect
import types
import typing
from collections import deque
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from proto.events import Bar

class StrategyError(ValueError):
    """A strategy that cannot be built: unknown kind, unknown/missing/wrong-typed parameter."""


class Strategy(Protocol):
    def on_bar(self, bar: Bar) -> int | None:
        """The new direction (+1 long, -1 short, 0 flat) at this bar's close, or None: no signal."""
        ...


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise StrategyError(f"sma_cross parameter {name!r} must be a positive integer, got {value!r}")
    return value


class SmaCross:
    """Long when the fast simple moving average of closes is above the slow one; short
    (or flat when long-only) when below; unchanged when they are exactly equal. Silent
    until `slow` bars have been seen.

    Exact whatever the decimal context: the closes are kept as integers in units of
    10**-places (places grows, and everything kept is rescaled, when a close has more
    decimals), so the rolling sums and the comparison are integer arithmetic, which never
    rounds and costs far less per bar than Decimal arithmetic in a context that never does."""

    __slots__ = ("fast", "slow", "long_only", "_closes", "_fast_sum", "_slow_sum", "_unit", "_multiplier")

    def __init__(self, fast: int, slow: int, long_only: bool = False) -> None:
        self.fast = _positive_int("fast", fast)
        self.slow = _positive_int("slow", slow)
        if fast >= slow:
            raise StrategyError(f"sma_cross parameter 'fast' ({fast}) must be smaller than 'slow' ({slow})")
        self.long_only = long_only
        self._closes: deque[int] = deque(maxlen=slow)  # in units of 1 / self._unit
        self._fast_sum = 0
        self._slow_sum = 0
        self._unit = 1  # 10**places
        self._multiplier: dict[int, int] = {1: 1}  # denominator of a close -> unit // denominator

    def on_bar(self, bar: Bar) -> int | None:
        closes, fast, slow = self._closes, self.fast, self.slow
        numerator, denominator = bar.close.as_integer_ratio()  # exact; the denominator divides 10**decimals
        multiplier = self._multiplier.get(denominator)
        if multiplier is None:
            multiplier = self._rescale(denominator)
        close = numerator * multiplier
        # Rolling sums: take out the close leaving each window before the deque drops it.
        seen = len(closes)
        fast_sum = self._fast_sum + close
        slow_sum = self._slow_sum + close
        if seen >= fast:
            fast_sum -= closes[-fast]
        if seen == slow:
            slow_sum -= closes[0]
        closes.append(close)
        self._fast_sum, self._slow_sum = fast_sum, slow_sum
        if seen + 1 < slow:
            return None
        # fast_sum/fast vs slow_sum/slow without a division.
        lhs, rhs = fast_sum * slow, slow_sum * fast
        if lhs > rhs:
            return 1
        if lhs < rhs:
            return 0 if self.long_only else -1
        return None

    def _rescale(self, denominator: int) -> int:
        """A close with more decimals than the unit holds: a finer unit, everything kept rescaled."""
        unit = self._unit
        while unit % denominator:
            unit *= 10
        factor = unit // self._unit
        closes = self._closes
        for i in range(len(closes)):
            closes[i] *= factor
        self._fast_sum *= factor
        self._slow_sum *= factor
        self._unit = unit
        self._multiplier = {d: unit // d for d in (*self._multiplier, denominator)}
        return self._multiplier[denominator]


REGISTRY: dict[str, type] = {"sma_cross": SmaCross}


def build_strategy(kind: str, params: Mapping[str, object], long_only: bool) -> Strategy:
    """A strategy instance from a registered `kind` or an import path `package.module:Class`,
    constructed with `params` (checked against the constructor's signature) and, when the
    constructor takes it, `long_only`."""
    cls = _resolve(kind)
    try:
        signature = inspect.signature(cls)
        hints = typing.get_type_hints(cls.__init__)
    except (TypeError, ValueError, NameError) as exc:
        raise StrategyError(f"strategy {kind!r}: cannot read its constructor signature: {exc}") from None
    accepted = {name: p for name, p in signature.parameters.items()
                if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    takes_any = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    described = ", ".join(f"{n}: {_type_name(hints.get(n))}" for n in accepted if n != "long_only") or "none"

    kwargs: dict[str, object] = {}
    for name, value in params.items():
        if name == "long_only":
            raise StrategyError(f"strategy {kind!r}: set long_only on the [[strategies]] entry, not in params")
        if name not in accepted and not takes_any:
            raise StrategyError(f"strategy {kind!r} has no parameter {name!r}; it accepts {described}")
        hint = hints.get(name)
        try:
            kwargs[name] = _coerce(hint, value)
        except (TypeError, ValueError, InvalidOperation):
            raise StrategyError(f"strategy {kind!r} parameter {name!r} must be {_type_name(hint)}, "
                                f"got {value!r}") from None
    if "long_only" in accepted:
        kwargs["long_only"] = long_only
    missing = [n for n, p in accepted.items() if p.default is p.empty and n not in kwargs]
    if missing:
        raise StrategyError(f"strategy {kind!r} needs parameter(s) {', '.join(map(repr, missing))}; "
                            f"it accepts {described}")
    try:
        strategy = cls(**kwargs)
    except StrategyError:
        raise
    except (TypeError, ValueError) as exc:
        raise StrategyError(f"strategy {kind!r}: {exc}") from None
    if not callable(getattr(strategy, "on_bar", None)):
        raise StrategyError(f"strategy {kind!r}: {cls.__qualname__} has no on_bar(bar) method")
    return strategy


def _resolve(kind: str) -> type:
    if ":" not in kind:
        try:
            return REGISTRY[kind]
        except KeyError:
            raise StrategyError(f"unknown strategy {kind!r}: known are {', '.join(sorted(REGISTRY))}, "
                                f"or an import path 'package.module:Class'") from None
    module_name, _, attr = kind.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise StrategyError(f"strategy {kind!r}: cannot import module {module_name!r}: {exc}") from None
    cls = getattr(module, attr, None)
    if not isinstance(cls, type):
        raise StrategyError(f"strategy {kind!r}: module {module_name!r} has no class {attr!r}")
    return cls


def _coerce(hint: Any, value: object) -> object:
    """`value` as the annotated type accepts it; raises TypeError when it cannot be.
    Unannotated or exotic parameters are passed through for the constructor to judge."""
    if hint is None or hint is Any:
        return value
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        for arm in typing.get_args(hint):
            try:
                return _coerce(arm, value)
            except (TypeError, ValueError, InvalidOperation):
                continue
        raise TypeError(value)
    if hint is bool or hint is type(None):
        if not isinstance(value, hint):
            raise TypeError(value)
        return value
    if isinstance(value, bool):  # bool is an int, but never a number here
        raise TypeError(value)
    if hint is float and isinstance(value, int):
        return float(value)
    if hint is Decimal and isinstance(value, (int, float, str)):
        number = Decimal(str(value))
        if not number.is_finite():
            raise ValueError(value)
        return number
    if isinstance(hint, type) and not isinstance(value, hint):
        raise TypeError(value)
    return value


def _type_name(hint: Any) -> str:
    if hint is None:
        return "any value"
    if isinstance(hint, type) and typing.get_origin(hint) is None:
        return "a number (Decimal)" if hint is Decimal else hint.__name__
    return str(hint).replace("typing.", "")
