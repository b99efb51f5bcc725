"""Where orders go: `shadow` fills internally against real market data; `live` (ccxt) comes later."""

from services.execution.venues.shadow import ShadowVenue

__all__ = ["ShadowVenue"]
