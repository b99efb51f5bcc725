"""Hard limits as pure checks. Each returns None when the target passes, or a verdict
(limit name, detail for a person: what was asked, what the limit is, on which symbol)."""

from __future__ import annotations

from decimal import Decimal

from services.risk.config import LimitsConfig
from proto.events import PriceSnapshot, TargetPosition

Verdict = tuple[str, str] | None

NS_PER_S = 1_000_000_000


def kill_switch(enabled: bool, target: TargetPosition, position: Decimal) -> Verdict:
    """While trading is disabled nothing that adds exposure passes (reducing targets skip the
    checks: the caller lets them through before asking)."""
    if enabled:
        return None
    return ("kill_switch", f"trading is disabled: target {target.qty} {target.symbol} on {target.venue} would "
                           f"increase exposure from the current position {position}; only reductions pass")


def stale_target(target: TargetPosition, now_ns: int, max_age_s: float | None) -> Verdict:
    """A target decided more than `max_age_s` ago (None disables the check): the market has moved on."""
    if max_age_s is None:
        return None
    age_ns = now_ns - target.ts_event
    if age_ns > max_age_s * NS_PER_S:
        return ("stale_target", f"target {target.id} ({target.qty} {target.symbol} on {target.venue}) is "
                                f"{age_ns / NS_PER_S:.1f} s old; the limit is {max_age_s:g} s")
    return None


def stale_price(snapshot: PriceSnapshot | None, now_ns: int, max_age_s: float | None,
                target: TargetPosition) -> Verdict:
    """No price, or one older than `max_age_s` (None disables the check)."""
    if max_age_s is None:
        return None
    where = f"{target.symbol} on {target.venue}"
    if snapshot is None:
        return ("stale_price", f"no price for {where} yet; cannot check the target against the market")
    age_ns = now_ns - snapshot.ts_event
    if age_ns > max_age_s * NS_PER_S:
        return ("stale_price", f"the newest price for {where} ({snapshot.price}) is {age_ns / NS_PER_S:.1f} s "
                               f"old; the limit is {max_age_s:g} s")
    return None


def max_position(target: TargetPosition, risk: LimitsConfig) -> Verdict:
    """|target qty| against the per-symbol limit, else the general one; unset: no limit."""
    limit = risk.max_position_per_symbol.get(target.symbol, risk.max_position)
    if limit is None or abs(target.qty) <= limit:
        return None
    return ("max_position", f"target {target.qty} {target.symbol} exceeds the maximum position of "
                            f"{limit} {target.symbol} (absolute)")


def max_order_notional(target: TargetPosition, position: Decimal, price: Decimal,
                       limit: Decimal | None) -> Verdict:
    """The order this target implies, |target - position| x price, against `limit`."""
    if limit is None:
        return None
    change = target.qty - position
    notional = abs(change) * price
    if notional <= limit:
        return None
    return ("max_order_notional", f"moving {target.symbol} from {position} to {target.qty} is an order of "
                                  f"{abs(change)} x {price} = {notional}, above the maximum order notional "
                                  f"of {limit}")
