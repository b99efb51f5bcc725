"""Hard limits as small objects. A client's limits are a list built from its config by `build`:
the kill switch always comes first, then one object per limit the config sets, so a new limit
is a class here and a line in `build`, and no client can skip one.

A limit checks a target against the `Context` the actor keeps (the time, the kill switch, the
client's position from fills, the newest price) and returns None when the target passes, or a
detail for a person: what was asked, what the limit is, on which symbol. `reads` names the
events whose state it needs beyond fills and the kill switch (which the actor always reads):
the actor subscribes to prices only when some limit reads them (a backtest publishes a price
per bar, and a subscription nothing reads costs a call each)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import ClassVar, Protocol

from proto.events import Event, PriceSnapshot, TargetPosition
from services.risk.config import LimitsConfig

NS_PER_S = 1_000_000_000
HUNDRED = Decimal(100)


@dataclass(frozen=True, slots=True)
class Context:
    """What the actor knows when a target arrives."""

    now_ns: int
    trading_enabled: bool
    position: Decimal  # the client's signed position in the target's market
    snapshot: PriceSnapshot | None  # the newest price of the target's market (None: none read)


class Limit(Protocol):
    name: ClassVar[str]  # what a RiskLimitBreached names as its `limit`
    reads: ClassVar[frozenset[type[Event]]]

    def check(self, target: TargetPosition, context: Context) -> str | None: ...

    def describe(self) -> str:
        """The limit as configured, for `bosun status` (after its name)."""
        ...


def build(config: LimitsConfig) -> tuple[Limit, ...]:
    """One client's limits, in the order they are checked (the first breach is the verdict)."""
    limits: list[Limit] = [KillSwitch()]
    if config.max_price_age_s is not None:
        limits += [StaleTarget(config.max_price_age_s), StalePrice(config.max_price_age_s)]
    if config.max_position is not None or config.max_position_per_symbol:
        limits.append(MaxPosition(config.max_position, config.max_position_per_symbol))
    if config.max_order_notional is not None:
        limits.append(MaxOrderNotional(config.max_order_notional))
    if config.price_band_pct is not None:
        limits.append(PriceBand(config.price_band_pct))
    return tuple(limits)


def _where(target: TargetPosition) -> str:
    return f"{target.symbol} on {target.venue}"


@dataclass(frozen=True, slots=True)
class KillSwitch:
    """While trading is disabled nothing that adds exposure passes (a reducing target is let
    through by the actor before any limit is asked)."""

    name: ClassVar = "kill_switch"
    reads: ClassVar = frozenset()

    def check(self, target: TargetPosition, context: Context) -> str | None:
        if context.trading_enabled:
            return None
        return (f"trading is disabled: target {target.qty} {_where(target)} would increase exposure from the "
                f"current position {context.position}; only reductions pass")

    def describe(self) -> str:
        return "only reductions while trading is disabled"


@dataclass(frozen=True, slots=True)
class StaleTarget:
    """A target decided more than `max_age_s` ago: the market has moved on."""

    max_age_s: float
    name: ClassVar = "stale_target"
    reads: ClassVar = frozenset()

    def check(self, target: TargetPosition, context: Context) -> str | None:
        age_ns = context.now_ns - target.ts_event
        if age_ns <= self.max_age_s * NS_PER_S:
            return None
        return (f"target {target.id} ({target.qty} {_where(target)}) is {age_ns / NS_PER_S:.1f} s old; "
                f"the limit is {self.max_age_s:g} s")

    def describe(self) -> str:
        return f"a target older than {self.max_age_s:g} s is refused"


@dataclass(frozen=True, slots=True)
class StalePrice:
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


@dataclass(frozen=True, slots=True)
class MaxPosition:
    """|target qty| against the symbol's own limit, else the general one (None: that symbol has none)."""

    general: Decimal | None
    per_symbol: dict[str, Decimal]
    name: ClassVar = "max_position"
    reads: ClassVar = frozenset()

    def check(self, target: TargetPosition, context: Context) -> str | None:
        limit = self.per_symbol.get(target.symbol, self.general)
        if limit is None or abs(target.qty) <= limit:
            return None
        return (f"target {target.qty} {target.symbol} exceeds the maximum position of {limit} {target.symbol} "
                f"(absolute)")

    def describe(self) -> str:
        symbols = "".join(f", {symbol} {limit}" for symbol, limit in sorted(self.per_symbol.items()))
        return f"|qty| <= {self.general if self.general is not None else 'unlimited'} per symbol{symbols}"


@dataclass(frozen=True, slots=True)
class MaxOrderNotional:
    """The order the target implies, |target - position| x price, valued at the newest price (the
    target's own reference price when none was read)."""

    limit: Decimal
    name: ClassVar = "max_order_notional"
    reads: ClassVar = frozenset({PriceSnapshot})

    def check(self, target: TargetPosition, context: Context) -> str | None:
        price = context.snapshot.price if context.snapshot is not None else target.price
        change = abs(target.qty - context.position)
        notional = change * price
        if notional <= self.limit:
            return None
        return (f"moving {target.symbol} from {context.position} to {target.qty} is an order of {change} x {price} "
                f"= {notional}, above the maximum order notional of {self.limit}")

    def describe(self) -> str:
        return f"|order qty| x price <= {self.limit} (quote currency)"


@dataclass(frozen=True, slots=True)
class PriceBand:
    """A target sized at a price more than `pct` percent from the newest price: sized on a wrong
    or old quote, or on a market that has just jumped. No price at all is refused too."""

    pct: Decimal
    name: ClassVar = "price_band"
    reads: ClassVar = frozenset({PriceSnapshot})

    def check(self, target: TargetPosition, context: Context) -> str | None:
        snapshot = context.snapshot
        if snapshot is None:
            return f"no price for {_where(target)} yet; cannot check the target's price {target.price} against it"
        off_pct = abs(target.price - snapshot.price) * HUNDRED / snapshot.price
        if off_pct <= self.pct:
            return None
        return (f"target {target.id} was sized at {target.price}, {off_pct:.2f}% from the newest price "
                f"{snapshot.price} of {_where(target)}; the band is {self.pct}%")

    def describe(self) -> str:
        return f"target price within {self.pct}% of the newest price"
