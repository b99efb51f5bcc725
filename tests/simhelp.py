"""Plain ccxt pointed at the exchange simulator, the way the live venue does it
(services/execution/venues/ccxt_edge.py: `point_at` and BINANCE_OPTIONS)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from bosun.apps.exchange_sim.config import SimConfig
from services.execution.venues.ccxt_edge import BINANCE_OPTIONS, point_at

API_KEY = "sim-key-0123456789abcdef"
API_SECRET = "sim-secret-fedcba9876543210"


def client(module: Any, base_url: str, *, secret: str = API_SECRET, **config: Any) -> Any:
    """A ccxt binance from `module` (ccxt.async_support or ccxt.pro) talking to the simulator."""
    exchange = module.binance({"apiKey": API_KEY, "secret": secret, "options": dict(BINANCE_OPTIONS), **config})
    return point_at(exchange, base_url)


def sim_config(*data: str, **balances: str) -> SimConfig:
    return SimConfig(data=data, balances={asset: Decimal(amount) for asset, amount in balances.items()})
