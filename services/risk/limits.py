"""Hard limits as small objects. A client's limits are a list built from its config by `build`:
the kill switch always comes first, then one object per limit the config sets, so a new limit
is a class here and a line in `build`, and no client can skip one.

A limit checks a target against the `Context` the actor keeps (the time, the kill switch, the
client's position from fills, the newest price, the exposure of every client, the client's open
orders) and returns None when the target passes, or a detail for a person: what was asked, what
the limit is, on which symbol. `reads` names the events whose state it needs beyond fills and the
kill switch (which the actor always reads): the actor subscribes to an input only when some limit
reads it (a backtest publishes a price per bar, and a subscription nothing reads costs a call each).

Some limits keep state of their own (the approvals of a rolling window, the day's starting and
the peak equity), fed by the actor through the `on_*` hooks. A size cap (`clamps`) can also say
the nearest quantity that fits it (`fit`), for `on_breach = "clamp"`. A limit that
`guards_reductions` is asked about targets that only reduce exposure too (the rest let those
through: a desk must be able to flatten)."""

from __future__ import annotations

from collections import deque
from datetime import datetime, timezone
from decimal import ROUND_DOWN, Decimal
from decimal import Context as DecimalContext
from typing import Any, ClassVar

import msgspec

from bosun.model.order_rules import RateWindow, notional, off_market_pct
from proto.events import Event, OrderAccepted, PositionChanged, PriceSnapshot, SubmitOrder, TargetPosition
from services.risk.config import LimitsConfig
from services.risk.exposure import Exposure

NS_PER_S = 1_000_000_000
NS_PER_DAY = 86_400 * NS_PER_S
HUNDRED = Decimal(100)
ZERO = Decimal(0)
# A clamped size is divided toward zero, so that size x price never rounds up past the cap.
_DOWN = DecimalContext(prec=28, rounding=ROUND_DOWN)
EQUITY = frozenset({PositionChanged, PriceSnapshot})
ORDERS = frozenset({SubmitOrder, OrderAccepted})  # with the fills, cancels and rejects these imply
MAX_TRIPS = 20  # the newest trips of a loss limit kept for status


class Context(msgspec.Struct, frozen=True, gc=False):
    """What the actor knows when a target arrives (one per verdict: a Struct is built in a
    fifth of a frozen dataclass's time)."""

    now_ns: int
    trading_enabled: bool
    position: Decimal  # the client's signed position in the target's market
    snapshot: PriceSnapshot | None  # the newest price of the target's market (None: none read)
    exposure: Exposure  # every client's positions, valued at their marks
    open_orders: int  # the client's orders submitted and not yet done


class Limit:
    """Base of every limit: the hooks do nothing unless a limit keeps state."""

    __slots__ = ()
    name: ClassVar[str]  # what a RiskLimitBreached names as its `limit`
    reads: ClassVar[frozenset[type[Event]]] = frozenset()
    clamps: ClassVar[bool] = False  # a size cap: `fit` gives the nearest size within it
    guards_reductions: bool = False

    def check(self, target: TargetPosition, context: Context) -> str | None:
        raise NotImplementedError

    def fit(self, target: TargetPosition, context: Context) -> Decimal:
        """The quantity nearest the target's that this cap allows (only for `clamps`)."""
        raise NotImplementedError

    def describe(self) -> str:
        """The limit as configured, for `bosun status` (after its name)."""
        raise NotImplementedError

    def state(self) -> dict[str, Any] | None:
        """What the limit holds now, for status; None: it holds nothing."""
        return None

    def on_approved(self, now_ns: int) -> None:
        """A target of the client was approved."""

    def on_equity(self, now_ns: int, equity: Decimal) -> None:
        """The client's equity, marked anew."""

    def on_resume(self) -> None:
        """A person turned trading back on."""


def build(config: LimitsConfig, capital: Decimal | None = None) -> tuple[Limit, ...]:
    """One client's limits, in the order they are checked (the first breach is the verdict):
    the states a person or a loss set first, then the rate and order counts, then the sizes.
    `config` is resolved (LimitsConfig.over) here if it was not; `capital` is the client's."""
    config = config.over()
    limits: list[Limit] = [KillSwitch()]
    if config.max_daily_loss is not None:
        limits.append(DailyLoss(config.max_daily_loss, config.daily_loss_action))
    if config.max_drawdown is not None or config.max_drawdown_pct is not None:
        if config.max_drawdown_pct is not None and capital is None:
            raise ValueError("risk.max_drawdown_pct needs the client's capital")
        limits.append(Drawdown(config.max_drawdown, config.max_drawdown_pct, config.drawdown_action))
    if config.max_orders_per_s is not None:
        limits.append(MaxOrderRate(config.max_orders_per_s, 1))
    if config.max_orders_per_min is not None:
        limits.append(MaxOrderRate(config.max_orders_per_min, 60))
    if config.max_open_orders is not None:
        limits.append(MaxOpenOrders(config.max_open_orders))
    if config.max_price_age_s is not None:
        limits += [StaleTarget(config.max_price_age_s), StalePrice(config.max_price_age_s)]
    if config.max_position is not None or config.max_position_per_symbol:
        limits.append(MaxPosition(config.max_position, config.max_position_per_symbol))
    if config.max_position_notional is not None:
        limits.append(MaxPositionNotional(config.max_position_notional))
    if config.max_gross_notional is not None:
        limits.append(MaxGrossNotional(config.max_gross_notional, every_client=False))
    if config.max_total_gross_notional is not None:
        limits.append(MaxGrossNotional(config.max_total_gross_notional, every_client=True))
    if config.max_order_notional is not None:
        limits.append(MaxOrderNotional(config.max_order_notional))
    if config.price_band_pct is not None:
        limits.append(PriceBand(config.price_band_pct))
    return tuple(limits)


def _where(target: TargetPosition) -> str:
    return f"{target.symbol} on {target.venue}"


def _price(target: TargetPosition, context: Context) -> Decimal:
    """What a target's size is valued at: the newest price, else the target's own reference price."""
    return context.snapshot.price if context.snapshot is not None else target.price


def _toward(qty: Decimal, magnitude: Decimal) -> Decimal:
    """`qty` with its size cut to at most `magnitude` (>= 0), keeping its sign."""
    return qty if abs(qty) <= magnitude else magnitude.copy_sign(qty) if magnitude else ZERO


def iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / NS_PER_S, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class KillSwitch(msgspec.Struct, Limit, frozen=True):
    """While trading is disabled nothing that adds exposure passes (a reducing target is let
    through by the actor before any limit is asked)."""

    name: ClassVar = "kill_switch"

    def check(self, target: TargetPosition, context: Context) -> str | None:
        if context.trading_enabled:
            return None
        return (f"trading is disabled: target {target.qty} {_where(target)} would increase exposure from the "
                f"current position {context.position}; only reductions pass")

    def describe(self) -> str:
        return "only reductions while trading is disabled"


class StaleTarget(msgspec.Struct, Limit, frozen=True):
    """A target decided more than `max_age_s` ago: the market has moved on."""

    max_age_s: float
    name: ClassVar = "stale_target"

    def check(self, target: TargetPosition, context: Context) -> str | None:
        age_ns = context.now_ns - target.ts_event
        if age_ns <= self.max_age_s * NS_PER_S:
            return None
        return (f"target {target.id} ({target.qty} {_where(target)}) is {age_ns / NS_PER_S:.1f} s old; "
                f"the limit is {self.max_age_s:g} s")

    def describe(self) -> str:
        return f"a target older than {self.max_age_s:g} s is refused"


class StalePrice(msgspec.Struct, Limit, frozen=True):
    """No price for the market, or one older than `max_age_s`."""

    max_age_s: float
    name: ClassVar = "stale_price"
    reads: ClassVar = frozenset({PriceSnapshot})

    def check(self, target: TargetPosition, context: Context) -> str | None:
        snapshot = context.snapshot
        if snapshot is None:
            return f"no price for {_where(target)} yet; cannot check the target against the market"
        age_ns = context.now_ns - snapshot.ts_event
        if age_ns <= self.max_age_s * NS_PER_S:
            return None
        return (f"the newest price for {_where(target)} ({snapshot.price}) is {age_ns / NS_PER_S:.1f} s old; "
                f"the limit is {self.max_age_s:g} s")

    def describe(self) -> str:
        return f"no price, or one older than {self.max_age_s:g} s: refused"


class MaxPosition(msgspec.Struct, Limit, frozen=True):
    """|target qty| against the symbol's own limit, else the general one (None: that symbol has none)."""

    general: Decimal | None
    per_symbol: dict[str, Decimal]
    name: ClassVar = "max_position"
    clamps: ClassVar = True

    def check(self, target: TargetPosition, context: Context) -> str | None:
        limit = self.per_symbol.get(target.symbol, self.general)
        if limit is None or abs(target.qty) <= limit:
            return None
        return (f"target {target.qty} {target.symbol} exceeds the maximum position of {limit} {target.symbol} "
                f"(absolute)")

    def fit(self, target: TargetPosition, context: Context) -> Decimal:
        return _toward(target.qty, self.per_symbol.get(target.symbol, self.general))  # type: ignore[arg-type]

    def describe(self) -> str:
        symbols = "".join(f", {symbol} {limit}" for symbol, limit in sorted(self.per_symbol.items()))
        return f"|qty| <= {self.general if self.general is not None else 'unlimited'} per symbol{symbols}"


class MaxOrderNotional(msgspec.Struct, Limit, frozen=True):
    """The order the target implies, |target - position| x price, valued at the newest price (the
    target's own reference price when none was read)."""

    limit: Decimal
    name: ClassVar = "max_order_notional"
    reads: ClassVar = frozenset({PriceSnapshot})
    clamps: ClassVar = True

    def check(self, target: TargetPosition, context: Context) -> str | None:
        price = _price(target, context)
        change = abs(target.qty - context.position)
        value = notional(change, price)
        if value <= self.limit:
            return None
        return (f"moving {target.symbol} from {context.position} to {target.qty} is an order of {change} x {price} "
                f"= {value}, above the maximum order notional of {self.limit}")

    def fit(self, target: TargetPosition, context: Context) -> Decimal:
        change = target.qty - context.position
        return context.position + _toward(change, _DOWN.divide(self.limit, _price(target, context)))

    def describe(self) -> str:
        return f"|order qty| x price <= {self.limit} (quote currency)"


class PriceBand(msgspec.Struct, Limit, frozen=True):
    """A target sized at a price more than `pct` percent from the newest price: sized on a wrong
    or old quote, or on a market that has just jumped. No price at all is refused too."""

    pct: Decimal
    name: ClassVar = "price_band"
    reads: ClassVar = frozenset({PriceSnapshot})

    def check(self, target: TargetPosition, context: Context) -> str | None:
        snapshot = context.snapshot
        if snapshot is None:
            return f"no price for {_where(target)} yet; cannot check the target's price {target.price} against it"
        off_pct = off_market_pct(target.price, snapshot.price)
        if off_pct <= self.pct:
            return None
        return (f"target {target.id} was sized at {target.price}, {off_pct:.2f}% from the newest price "
                f"{snapshot.price} of {_where(target)}; the band is {self.pct}%")

    def describe(self) -> str:
        return f"target price within {self.pct}% of the newest price"


class MaxPositionNotional(msgspec.Struct, Limit, frozen=True):
    """|target qty| x price in one market."""

    limit: Decimal
    name: ClassVar = "max_position_notional"
    reads: ClassVar = frozenset({PriceSnapshot})
    clamps: ClassVar = True

    def check(self, target: TargetPosition, context: Context) -> str | None:
        price = _price(target, context)
        notional = abs(target.qty) * price
        if notional <= self.limit:
            return None
        return (f"target {target.qty} {_where(target)} is a position of {abs(target.qty)} x {price} = {notional}, "
                f"above the maximum position notional of {self.limit}")

    def fit(self, target: TargetPosition, context: Context) -> Decimal:
        return _toward(target.qty, _DOWN.divide(self.limit, _price(target, context)))

    def describe(self) -> str:
        return f"|qty| x price <= {self.limit} per market (quote currency)"


class MaxGrossNotional(msgspec.Struct, Limit, frozen=True):
    """The sum of |position| x mark over the client's markets (`every_client`: over every
    client's), with the target's market at the target's size and price."""

    limit: Decimal
    every_client: bool
    reads: ClassVar = frozenset({PriceSnapshot})
    clamps: ClassVar = True

    @property
    def name(self) -> str:  # type: ignore[override]
        return "max_total_gross_notional" if self.every_client else "max_gross_notional"

    def _others(self, target: TargetPosition, context: Context) -> Decimal:
        return context.exposure.gross(None if self.every_client else target.client,
                                      (target.client, target.venue, target.symbol))

    def check(self, target: TargetPosition, context: Context) -> str | None:
        others = self._others(target, context)
        price = _price(target, context)
        gross = others + abs(target.qty) * price
        if gross <= self.limit:
            return None
        whose = "every client's" if self.every_client else f"client {target.client!r}'s"
        return (f"target {target.qty} {_where(target)} at {price} makes {whose} gross notional {gross} "
                f"({others} elsewhere), above the maximum of {self.limit}")

    def fit(self, target: TargetPosition, context: Context) -> Decimal:
        headroom = max(self.limit - self._others(target, context), ZERO)
        return _toward(target.qty, _DOWN.divide(headroom, _price(target, context)))

    def describe(self) -> str:
        return f"sum of |qty| x price over {'every client' if self.every_client else 'its markets'} <= {self.limit}"


class MaxOpenOrders(msgspec.Struct, Limit, frozen=True):
    """A target that adds exposure needs an order: refused while the client has this many open."""

    limit: int
    name: ClassVar = "max_open_orders"
    reads: ClassVar = ORDERS

    def check(self, target: TargetPosition, context: Context) -> str | None:
        if context.open_orders < self.limit:
            return None
        return (f"client {target.client!r} has {context.open_orders} open orders, the maximum is {self.limit}; "
                f"target {target.qty} {_where(target)} would need another")

    def describe(self) -> str:
        return f"at most {self.limit} open orders"


class MaxOrderRate(Limit):
    """At most `limit` approvals in any rolling window of `window_s` by the injected clock. It
    guards reductions too: a runaway loop can churn orders without ever adding exposure."""

    __slots__ = ("limit", "window_s", "_approvals")
    guards_reductions = True  # type: ignore[misc]

    def __init__(self, limit: int, window_s: int) -> None:
        self.limit, self.window_s = limit, window_s
        self._approvals = RateWindow(limit, window_s)

    @property
    def name(self) -> str:  # type: ignore[override]
        return "max_orders_per_s" if self.window_s == 1 else "max_orders_per_min"

    def check(self, target: TargetPosition, context: Context) -> str | None:
        if not self._approvals.full(context.now_ns):
            return None
        return (f"client {target.client!r} had {self.limit} targets approved in the last {self.window_s} s, "
                f"the maximum; target {target.qty} {_where(target)} must wait")

    def on_approved(self, now_ns: int) -> None:
        self._approvals.add(now_ns)

    def describe(self) -> str:
        return f"at most {self.limit} approvals in any {self.window_s} s"

    def state(self) -> dict[str, Any]:
        return {"approved_in_window": len(self._approvals)}


class _LossLimit(Limit):
    """A limit on how far equity has fallen; once tripped the client may only reduce
    (`action` "reducing": the actor lets reductions by) or do nothing (`"halted"`)."""

    __slots__ = ("action", "equity", "tripped_ns", "trips")
    reads = EQUITY

    def __init__(self, action: str) -> None:
        self.action = action
        self.equity: Decimal | None = None  # the newest marked equity (None: not marked yet)
        self.tripped_ns: int | None = None
        self.trips: deque[dict[str, str]] = deque(maxlen=MAX_TRIPS)

    @property
    def guards_reductions(self) -> bool:  # type: ignore[override]
        return self.action == "halted"

    def _trip(self, now_ns: int, why: str) -> None:
        self.tripped_ns = now_ns
        self.trips.append({"at": iso(now_ns), "why": why})

    def _refusal(self, target: TargetPosition, until: str) -> str:
        allowed = "nothing passes" if self.action == "halted" else "only reductions pass"
        return (f"{self.trips[-1]['why']} (tripped {self.trips[-1]['at']}); {allowed} {until}: "
                f"target {target.qty} {_where(target)} refused")


class DailyLoss(_LossLimit):
    """Equity down `limit` or more from the UTC day's starting equity (the newest mark before
    the day began, or the first mark of a fresh start). Resets when the next UTC day begins."""

    __slots__ = ("limit", "_day", "_start")
    name = "max_daily_loss"

    def __init__(self, limit: Decimal, action: str) -> None:
        super().__init__(action)
        self.limit = limit
        self._day: int | None = None
        self._start: Decimal | None = None

    def _roll(self, now_ns: int) -> None:
        day = now_ns // NS_PER_DAY
        if day != self._day:
            self._day, self._start, self.tripped_ns = day, self.equity, None

    def on_equity(self, now_ns: int, equity: Decimal) -> None:
        self._roll(now_ns)
        self.equity = equity
        if self._start is None:
            self._start = equity
        loss = self._start - equity
        if self.tripped_ns is None and loss >= self.limit:
            self._trip(now_ns, f"equity {equity} is {loss} below the UTC day's starting equity {self._start}, "
                               f"the maximum daily loss is {self.limit}")

    def check(self, target: TargetPosition, context: Context) -> str | None:
        self._roll(context.now_ns)
        return None if self.tripped_ns is None else self._refusal(target, "until the next UTC day")

    def describe(self) -> str:
        return f"equity down {self.limit} from the UTC day's start: {self.action} until the next day"

    def state(self) -> dict[str, Any]:
        used = None if self._start is None or self.equity is None else self._start - self.equity
        return {"day_start_equity": _text(self._start), "equity": _text(self.equity), "loss": _text(used),
                "tripped": self.tripped_ns is not None, "trips": list(self.trips)}


class Drawdown(_LossLimit):
    """Equity down `amount` or more (or `pct` percent or more) from its peak since a fresh
    start. Stays tripped until a person resumes trading (the kill switch turned back on),
    which takes the equity of that moment as the new peak."""

    __slots__ = ("amount", "pct", "_peak")
    name = "max_drawdown"

    def __init__(self, amount: Decimal | None, pct: Decimal | None, action: str) -> None:
        super().__init__(action)
        self.amount, self.pct = amount, pct
        self._peak: Decimal | None = None

    def on_equity(self, now_ns: int, equity: Decimal) -> None:
        self.equity = equity
        peak = self._peak = equity if self._peak is None or equity > self._peak else self._peak
        down = peak - equity
        if self.tripped_ns is None and ((self.amount is not None and down >= self.amount)
                                        or (self.pct is not None and down * HUNDRED >= self.pct * peak)):
            self._trip(now_ns, f"equity {equity} is {down} below its peak {peak}, the maximum drawdown is "
                               f"{self.describe_limit()}")

    def describe_limit(self) -> str:
        return " or ".join(x for x in (f"{self.amount}" if self.amount is not None else "",
                                       f"{self.pct}%" if self.pct is not None else "") if x)

    def check(self, target: TargetPosition, context: Context) -> str | None:
        return None if self.tripped_ns is None else self._refusal(target, "until trading is resumed")

    def on_resume(self) -> None:
        self.tripped_ns, self._peak = None, self.equity

    def describe(self) -> str:
        return f"equity down {self.describe_limit()} from its peak: {self.action} until resumed"

    def state(self) -> dict[str, Any]:
        down = None if self._peak is None or self.equity is None else self._peak - self.equity
        return {"peak_equity": _text(self._peak), "equity": _text(self.equity), "drawdown": _text(down),
                "tripped": self.tripped_ns is not None, "trips": list(self.trips)}


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)
