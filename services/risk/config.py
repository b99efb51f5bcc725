"""The risk service's configuration: each client's hard limits."""

from __future__ import annotations

from decimal import Decimal

from bosun.runtime.config import ConfigStruct


class LimitsConfig(ConfigStruct):
    """Hard limits of one client (`[clients.risk]`). A limit left unset does not apply."""

    max_position: Decimal | None = None  # |base qty| per symbol
    max_position_per_symbol: dict[str, Decimal] = {}
    max_order_notional: Decimal | None = None  # quote currency, per order
    max_price_age_s: float | None = 300.0  # refuse to trade on a price older than this


class RiskConfig(ConfigStruct):
    clients: dict[str, LimitsConfig]  # client id -> its limits
