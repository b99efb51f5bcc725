"""The risk service's logic: every proposed target gets exactly one verdict, TargetApproved
or RiskLimitBreached, with an id derived from the target's id (a replayed target yields
the same verdict id, so downstream de-duplication drops it).

Trading starts in an unknown state, treated as disabled, until the kill-switch key is read:
the first value read (false too, after a restart) publishes TradingStateChanged. A target
that only reduces exposure is always let through (a halted desk must be able to flatten);
others meet the client's limits in order (services/risk/limits.py: the kill switch first,
then each limit its config sets), and the first breach is the verdict. Positions are the
signed sum of fills; prices are read only when some client's limit reads them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from bosun.model.exposure import reduces
from bosun.model.positions import NetPositions
from bosun.model.prices import LatestPrices
from bosun.model.recent import RecentIds
from bosun.runtime.actor import Actor, Delivery, Input, Outbox, event_input
from bosun.runtime.clock import Clock
from proto import codec
from proto import subjects as sj
from proto.events import (OrderFilled, PriceSnapshot, RiskLimitBreached, TargetApproved, TargetPosition,
                          TradingStateChanged)
from services.risk import limits
from services.risk.config import RiskConfig

RECENT_FILLS = 10_000  # fill ids remembered to drop a redelivered copy (bounded)


class RiskActor(Actor):
    name = "risk"

    def __init__(self, clock: Clock, out: Outbox, config: RiskConfig) -> None:
        super().__init__(clock, out)
        self._limits = {client: limits.build(risk) for client, risk in config.clients.items()}
        # None until the key is read: treated as disabled, and the first value always publishes
        self.enabled: bool | None = None
        self._positions = NetPositions()
        self._prices = LatestPrices()
        self._recent_fills = RecentIds(RECENT_FILLS)  # (venue, fill id): a redelivered copy is dropped
        self._verdicts: Counter[str] = Counter()
        self._reads_prices = any(PriceSnapshot in limit.reads for each in self._limits.values() for limit in each)

    def inputs(self) -> Sequence[Input]:
        prices = ([event_input(sj.PRICES, PriceSnapshot, self._prices.on_price_snapshot, Delivery.LATEST)]
                  if self._reads_prices else [])
        return [
            event_input(sj.TARGETS, TargetPosition, self.on_target_position, Delivery.DURABLE),
            *prices,
            event_input(sj.FILLS, OrderFilled, self.on_order_filled, Delivery.REPLAY),
            Input(sj.TRADING_ENABLED, self.on_trading_enabled, codec.decode_trading_enabled, Delivery.LATEST),
        ]

    # --- state

    def on_trading_enabled(self, enabled: bool) -> None:
        if enabled == self.enabled:
            return
        self.enabled = enabled
        now = self.clock.now_ns()
        self.out.publish(TradingStateChanged(id=f"trading.{enabled}.{now}", ts_event=now, enabled=enabled,
                                             reason=f"kill switch key set to {str(enabled).lower()}"))

    def on_order_filled(self, fill: OrderFilled) -> None:
        if not self._recent_fills.add((fill.venue, fill.id)):
            return
        self._positions.apply(fill)

    def position(self, client: str, venue: str, symbol: str) -> Decimal:
        return self._positions.get((client, venue, symbol))

    # --- verdicts

    def on_target_position(self, target: TargetPosition) -> None:
        now = self.clock.now_ns()
        verdict = self._check(target, now)
        if verdict is None:
            self._verdicts["approved"] += 1
            self.out.publish(TargetApproved(id=target.id, ts_event=now, target=target))
            return
        limit, detail = verdict
        self._verdicts[limit] += 1
        self.out.publish(RiskLimitBreached(
            id=f"{target.id}.{limit}", ts_event=now, client=target.client, venue=target.venue,
            symbol=target.symbol, limit=limit, detail=detail, target_id=target.id))

    def _check(self, target: TargetPosition, now: int) -> tuple[str, str] | None:
        """None: approved; else (the breached limit's name, its detail)."""
        client_limits = self._limits.get(target.client)
        if client_limits is None:
            return ("unknown_client", f"client {target.client!r} is not configured "
                                      f"(known: {', '.join(sorted(self._limits)) or 'none'})")
        position = self.position(target.client, target.venue, target.symbol)
        if reduces(target.qty, position):
            return None  # flattening is always allowed, halted, stale or over a limit
        context = limits.Context(now, self.enabled is True, position,
                                 self._prices.by_market.get((target.venue, target.symbol)))
        for limit in client_limits:
            detail = limit.check(target, context)
            if detail is not None:
                return limit.name, detail
        return None

    def status(self) -> dict[str, Any]:
        approved = self._verdicts["approved"]
        return {
            "trading_enabled": self.enabled is True,
            "positions": self._positions.open(),
            "approved": approved,
            "breached": sum(self._verdicts.values()) - approved,
            "breaches_by_limit": {k: n for k, n in sorted(self._verdicts.items()) if k != "approved"},
            # what `bosun status` shows: each client's limits, in the order they are checked
            "limits": {client: {limit.name: limit.describe() for limit in each}
                       for client, each in sorted(self._limits.items())},
        }
