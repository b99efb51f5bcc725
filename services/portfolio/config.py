"""The portfolio service's configuration: each client's starting capital, and the ledger's settings."""

from __future__ import annotations

import math
from decimal import Decimal

from bosun.runtime.config import ConfigStruct

DAY_S = 86_400.0


class LedgerConfig(ConfigStruct):
    """`[portfolio]` in the TOML file."""

    snapshot_interval_s: float = 60.0  # equity snapshots, and the ledger state a restart starts from
    max_price_age_s: float = 120.0  # a mark older than this is reported stale

    def __post_init__(self) -> None:
        for name in ("snapshot_interval_s", "max_price_age_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0 < value <= DAY_S):
                raise ValueError(f"portfolio.{name} must be a number of seconds above 0 and at most a day "
                                 f"({DAY_S:.0f}), got {value}")


class PortfolioConfig(ConfigStruct):
    capital: dict[str, Decimal]  # client id -> capital in quote currency
    ledger: LedgerConfig = LedgerConfig()
