"""Plain ccxt pointed at the exchange simulator: what a live venue must set to talk to it.

- every `urls['api']` REST entry moved to the simulator's base URL (the path kept: /api/v3,
  /sapi/v1, ...), so nothing leaves the machine and an endpoint the simulator lacks answers 404;
- ccxt.pro's `urls['api']['ws']['spot']` (ws://HOST:PORT/ws, the listen-key stream) and
  `urls['api']['ws']['ws-api']['spot']` (ws://HOST:PORT/ws-api/v3, where ccxt.pro subscribes to
  the spot user stream);
- options `fetchMarkets: {'types': ['spot']}` (no futures or options exchangeInfo),
  `fetchCurrencies: False` (no /sapi/v1/capital/config/getall) and `fetchMargins: False` (no
  /sapi/v1/margin/allPairs); and, to list open orders without a symbol,
  `fetchOpenOrders: {'warnWithoutSymbol': False}`."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from bosun.apps.exchange_sim.config import SimConfig

API_KEY = "sim-key-0123456789abcdef"
API_SECRET = "sim-secret-fedcba9876543210"
CCXT_OPTIONS = {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False, "fetchMargins": False,
                # Reconciliation lists the open orders of every symbol at once, which ccxt refuses by default.
                "fetchOpenOrders": {"warnWithoutSymbol": False}}


def point_at(exchange: Any, base_url: str) -> Any:
    """`exchange` (a ccxt binance, async or pro) with every REST and spot websocket URL on the simulator."""
    api = exchange.urls["api"]
    for name, url in list(api.items()):
        if isinstance(url, str):
            api[name] = base_url + urlsplit(url).path
    ws_base = "ws://" + base_url.removeprefix("http://")
    if isinstance(api.get("ws"), dict):
        ws_api = {**api["ws"]["ws-api"], "spot": ws_base + "/ws-api/v3"}
        api["ws"] = {**api["ws"], "spot": ws_base + "/ws", "ws-api": ws_api}
    return exchange


def client(module: Any, base_url: str, *, secret: str = API_SECRET, **config: Any) -> Any:
    """A ccxt binance from `module` (ccxt.async_support or ccxt.pro) talking to the simulator."""
    exchange = module.binance({"apiKey": API_KEY, "secret": secret, "options": dict(CCXT_OPTIONS), **config})
    return point_at(exchange, base_url)


def sim_config(*data: str, **balances: str) -> SimConfig:
    return SimConfig(data=data, balances={asset: Decimal(amount) for asset, amount in balances.items()})
