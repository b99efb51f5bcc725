"""What a number on the wire may be: one rule per kind of amount, checked when an event is decoded.

Every `Decimal` field of an event is declared with one of the kinds below (`Price`, `Qty`,
...), so decoding refuses NaN, sNaN and infinities everywhere, a zero or negative value where
the field is a magnitude, and a value past a hard sanity cap. An event also names the fields
whose product is its notional (`qty x price`), capped as well. These caps are global, not per
market: they stop absurd values (a 1e12 BTC target) before any state sees them, whatever a
client's configured limits; a market's real limits are risk's (services/risk).

The caps:
- a quantity, |qty| <= 1e15 base units: more than the whole supply of the most plentiful
  majors (SHIB has 5.9e14), so no real order or position comes near it;
- a price <= 1e12 quote units;
- a notional, |qty| x price <= 1e11 quote units: a hundred billion dollars in one order;
- money (fees, PnL) |x| <= 1e14 quote units.

msgspec has no constraints on Decimal, so the kinds are `Annotated` markers msgspec ignores
and `check` reads them (the decoders in proto.codec call it on every event)."""

from __future__ import annotations

import types
import typing
from decimal import MAX_PREC, Context, Decimal
from typing import Annotated

import msgspec

ZERO = Decimal(0)
# The caps are compared exactly: abs() and `*` in the default context round to 28 digits, which
# would let a value of more digits just past a cap round down onto it and pass.
EXACT = Context(prec=MAX_PREC)
MAX_QTY = Decimal("1e15")
MAX_PRICE = Decimal("1e12")
MAX_NOTIONAL = Decimal("1e11")
MAX_MONEY = Decimal("1e14")
MAX_RATE = Decimal("1")  # a funding rate is a fraction per period: Binance caps it at a few percent


class AmountError(ValueError):
    """A number an event may not carry; the message names the event type, the field and the value."""


class Kind(msgspec.Struct, frozen=True):
    """A finite number with `floor` (exclusive when `strict`; None: signed) and |value| <= `cap`."""

    name: str
    floor: Decimal | None
    strict: bool
    cap: Decimal | None

    def problem(self, value: Decimal) -> str | None:
        """What is wrong with `value`, or None."""
        if not value.is_finite():
            return "is not a finite number"
        floor = self.floor
        if floor is not None and (value <= floor if self.strict else value < floor):
            return f"must be {'>' if self.strict else '>='} {floor}"
        if self.cap is not None and value.copy_abs() > self.cap:
            return f"is above the sanity cap of {self.cap}"
        return None


PRICE = Kind("price", ZERO, True, MAX_PRICE)
QTY = Kind("quantity", ZERO, True, MAX_QTY)
QTY_OR_ZERO = Kind("quantity", ZERO, False, MAX_QTY)
SIGNED_QTY = Kind("signed quantity", None, False, MAX_QTY)
VOLUME = Kind("volume", ZERO, False, None)  # a bar's traded volume: sums many trades, so no per-order cap
MONEY = Kind("money", None, False, MAX_MONEY)  # signed: fees can be rebates, PnL losses

Price = Annotated[Decimal, PRICE]  # > 0
Qty = Annotated[Decimal, QTY]  # unsigned, > 0: a fill, a trade, an order's quantity
QtyOrZero = Annotated[Decimal, QTY_OR_ZERO]  # unsigned, 0 allowed: a close-position order's qty
SignedQty = Annotated[Decimal, SIGNED_QTY]  # + long, - short: targets and positions
Volume = Annotated[Decimal, VOLUME]
Money = Annotated[Decimal, MONEY]
NonNegativePrice = Annotated[Decimal, Kind("price", ZERO, False, MAX_PRICE)]  # a flat position's avg price is 0
Distance = Annotated[Decimal, Kind("price distance", ZERO, False, MAX_PRICE)]  # k sigma x price: 0 on a flat market
Rate = Annotated[Decimal, Kind("rate", None, False, MAX_RATE)]  # signed fraction per period: a funding rate


class _Rules(msgspec.Struct, frozen=True):
    fields: tuple[tuple[str, Kind], ...]
    nested: tuple[str, ...]  # fields holding another event (TargetApproved.target)
    notional: tuple[str, str] | None


def check(event: msgspec.Struct) -> None:
    """Raise AmountError if any amount of `event` (or of an event it holds) breaks its rule."""
    # Every event a service decodes (and every target risk gets in process) is checked, so this
    # runs per message: a getattr per amount costs less than one attrgetter call and a zip over
    # the tuple it returns.
    rules = _BY_TYPE.get(type(event)) or _rules(type(event))
    for name, kind in rules.fields:
        value = getattr(event, name)
        if value is not None:
            problem = kind.problem(value)
            if problem is not None:
                raise AmountError(f"{type(event).__name__}.{name} = {value} {problem} ({kind.name})")
    if rules.notional is not None:
        qty_field, price_field = rules.notional
        qty, price = getattr(event, qty_field), getattr(event, price_field)
        if price is not None:
            notional = EXACT.multiply(qty.copy_abs(), price)
            if notional > MAX_NOTIONAL:
                raise AmountError(f"{type(event).__name__} notional {qty_field} x {price_field} = "
                                  f"{qty.copy_abs()} x {price} = {notional:.6E} is above the sanity cap of "
                                  f"{MAX_NOTIONAL} (quote currency)")
    for name in rules.nested:
        check(getattr(event, name))


_BY_TYPE: dict[type, _Rules] = {}  # each event type's rules, learnt once (a dict lookup: half a @cache call)


def _rules(kind: type) -> _Rules:
    hints = typing.get_type_hints(kind, include_extras=True)
    fields: list[tuple[str, Kind]] = []
    nested: list[str] = []
    for name in kind.__struct_fields__:
        for hint in _alternatives(hints[name]):
            if typing.get_origin(hint) is Annotated:
                fields += [(name, m) for m in hint.__metadata__ if isinstance(m, Kind)]
            elif hint is Decimal:
                raise TypeError(f"{kind.__name__}.{name} is a bare Decimal: declare its kind (proto.amounts)")
            elif isinstance(hint, type) and issubclass(hint, msgspec.Struct):
                nested.append(name)
    rules = _BY_TYPE[kind] = _Rules(tuple(fields), tuple(nested), getattr(kind, "notional", None))
    return rules


def _alternatives(hint: object) -> tuple[object, ...]:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return typing.get_args(hint)
    return (hint,)
