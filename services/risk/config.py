"""The risk service's configuration: each client's hard limits (services/risk/limits.py builds
one limit object per limit set here).

A client's `[clients.risk]` and the top-level `[risk]` (the defaults for every client) are the
same struct. A field a client leaves out is UNSET, so a client's own value wins even when it
equals the built-in default; `over` resolves a client's limits against the defaults."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

import msgspec
from msgspec import UNSET, UnsetType

from bosun.runtime.config import ConfigStruct

LossAction = Literal["reducing", "halted"]  # what a tripped loss limit leaves the client able to do
# The value of a field that neither the client nor the defaults set; a field not named: None (no limit).
BUILT_IN: dict[str, Any] = {"max_price_age_s": 300.0, "max_position_per_symbol": {}, "on_breach": "reject",
                            "daily_loss_action": "reducing", "drawdown_action": "reducing", "errors_window_s": 60.0,
                            "halt_on_unknown_order": False, "halt_on_market_halt": False}
_AMOUNTS = ("max_position", "max_order_notional", "price_band_pct", "max_position_notional", "max_gross_notional",
            "max_total_gross_notional", "max_daily_loss", "max_drawdown", "errors_window_s")
_COUNTS = ("max_open_orders", "max_orders_per_s", "max_orders_per_min", "stale_price_ms", "max_errors",
           "max_ack_latency_ms")


class LimitsConfig(ConfigStruct):
    """Hard limits of one client (`[clients.risk]`), or their defaults (`[risk]`). A limit left
    unset does not apply. Notionals and losses are in quote currency."""

    max_position: Decimal | None | UnsetType = UNSET  # |base qty| per symbol
    max_position_per_symbol: dict[str, Decimal] | UnsetType = UNSET
    max_order_notional: Decimal | None | UnsetType = UNSET  # per order
    max_price_age_s: float | None | UnsetType = UNSET  # refuse to trade on a price (or a target) older than this
    price_band_pct: Decimal | None | UnsetType = UNSET  # refuse a target sized at a price this far (%) from the newest
    max_position_notional: Decimal | None | UnsetType = UNSET  # |qty| x price per market
    max_gross_notional: Decimal | None | UnsetType = UNSET  # sum over the client's markets of |qty| x price
    max_total_gross_notional: Decimal | None | UnsetType = UNSET  # the same over every client
    max_open_orders: int | None | UnsetType = UNSET
    max_orders_per_s: int | None | UnsetType = UNSET  # approvals in any rolling second
    max_orders_per_min: int | None | UnsetType = UNSET  # approvals in any rolling minute
    max_daily_loss: Decimal | None | UnsetType = UNSET  # below the UTC day's starting equity
    max_drawdown: Decimal | None | UnsetType = UNSET  # below the peak equity
    max_drawdown_pct: Decimal | None | UnsetType = UNSET  # the same in % of the peak (needs the client's capital)
    on_breach: Literal["clamp", "reject"] | UnsetType = UNSET  # a target beyond a size cap: cut to it, or refused
    daily_loss_action: LossAction | UnsetType = UNSET
    drawdown_action: LossAction | UnsetType = UNSET
    # Circuit breakers (services/risk/breakers.py), each off when unset: a trip halts its scope
    # until a person resumes it.
    stale_price_ms: int | None | UnsetType = UNSET  # a price of a market the client trades older than this
    max_errors: int | None | UnsetType = UNSET  # more order rejects than this in errors_window_s
    errors_window_s: float | None | UnsetType = UNSET
    max_ack_latency_ms: int | None | UnsetType = UNSET  # an order unanswered by its venue for longer
    halt_on_unknown_order: bool | UnsetType = UNSET  # an order on a venue that no intent explains
    halt_on_market_halt: bool | UnsetType = UNSET  # a market its venue reports halted

    def __post_init__(self) -> None:
        per_symbol = self.max_position_per_symbol if self.max_position_per_symbol is not UNSET else {}
        named = [(name, getattr(self, name)) for name in ("max_price_age_s", *_AMOUNTS)]
        named += [(f"max_position_per_symbol.{s}", v) for s, v in per_symbol.items()]
        for name, value in named:
            if value is not None and value is not UNSET and not (Decimal(value).is_finite() and value > 0):
                raise ValueError(f"risk.{name} must be a finite number > 0, got {value}")  # Decimal(): floats too
        for name in _COUNTS:
            value = getattr(self, name)
            if value is not None and value is not UNSET and value < 1:
                raise ValueError(f"risk.{name} must be an integer >= 1, got {value}")
        pct = self.max_drawdown_pct
        if pct is not None and pct is not UNSET and pct > 100:
            raise ValueError(f"risk.max_drawdown_pct must be in (0, 100], got {pct}")

    def over(self, defaults: LimitsConfig | None = None) -> LimitsConfig:
        """These limits with each field left unset taken from `defaults`, else its built-in value:
        the result has no UNSET field."""
        values = {}
        for name in self.__struct_fields__:
            value = getattr(self, name)
            if value is UNSET and defaults is not None:
                value = getattr(defaults, name)
            values[name] = BUILT_IN.get(name) if value is UNSET else value
        return msgspec.structs.replace(self, **values)


class RiskConfig(ConfigStruct):
    clients: dict[str, LimitsConfig]  # client id -> its limits
    defaults: LimitsConfig = LimitsConfig()  # the top-level `[risk]`: what a client leaves unset
    capital: dict[str, Decimal] = {}  # client id -> its starting capital (a drawdown in % needs it)

    def limits_of(self, client: str) -> LimitsConfig:
        return self.clients[client].over(self.defaults)
