"""The portfolio service's configuration: each client's starting capital."""

from __future__ import annotations

from decimal import Decimal

from bosun.runtime.config import ConfigStruct


class PortfolioConfig(ConfigStruct):
    capital: dict[str, Decimal]  # client id -> capital in quote currency
