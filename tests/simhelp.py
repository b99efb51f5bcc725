"""Plain ccxt pointed at the exchange simulator, the way the live venue does it
(services/execution/venues/dialects.py: `point_at` and each exchange's options)."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

from bosun.apps.exchange_sim.config import SimConfig
from services.execution.venues.dialects import dialect, point_at

API_KEY = "sim-key-0123456789abcdef"
API_SECRET = "sim-secret-fedcba9876543210"


def client(module: Any, base_url: str, *, secret: str = API_SECRET, exchange_id: str = "binance",
           **config: Any) -> Any:
    """A ccxt binance (or bybit) from `module` (ccxt.async_support or ccxt.pro) talking to the simulator."""
    exchange = getattr(module, exchange_id)({"apiKey": API_KEY, "secret": secret,
                                             "options": copy.deepcopy(dialect(exchange_id).options), **config})
    return point_at(exchange, base_url)


def sim_config(*data: str, **balances: str) -> SimConfig:
    return SimConfig(data=data, balances={asset: Decimal(amount) for asset, amount in balances.items()})
