"""The risk service's configuration: each client's hard limits (services/risk/limits.py builds
one limit object per limit set here)."""

from __future__ import annotations

from decimal import Decimal

from bosun.runtime.config import ConfigStruct


class LimitsConfig(ConfigStruct):
    """Hard limits of one client (`[clients.risk]`). A limit left unset does not apply."""

    max_position: Decimal | None = None  # |base qty| per symbol
    max_position_per_symbol: dict[str, Decimal] = {}
    max_order_notional: Decimal | None = None  # quote currency, per order
    max_price_age_s: float | None = 300.0  # refuse to trade on a price (or a target) older than this
    price_band_pct: Decimal | None = None  # refuse a target sized at a price this far (%) from the newest

    def __post_init__(self) -> None:
        named = [("max_position", self.max_position), ("max_order_notional", self.max_order_notional),
                 ("max_price_age_s", self.max_price_age_s), ("price_band_pct", self.price_band_pct),
                 *((f"max_position_per_symbol.{s}", v) for s, v in self.max_position_per_symbol.items())]
        for name, value in named:
            if value is not None and not (Decimal(value).is_finite() and value > 0):  # Decimal(): floats too
                raise ValueError(f"risk.{name} must be a finite number > 0, got {value}")


class RiskConfig(ConfigStruct):
    clients: dict[str, LimitsConfig]  # client id -> its limits
