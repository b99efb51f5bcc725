"""The ingest service's configuration: which markets, from where."""

from __future__ import annotations

from typing import Literal

import msgspec

from bosun.runtime.config import ConfigStruct
from proto.subjects import check_token


class IngestConfig(ConfigStruct):
    venue: str = "binance"
    symbols: list[str] = msgspec.field(default_factory=lambda: ["BTCUSDT"])
    interval: str = "1m"
    ws_url: str = "wss://stream.binance.com:9443"
    rest_url: str = "https://api.binance.com"  # kline history: the gap a (re)connect missed
    # Bars filled from REST per symbol on each (re)connect, at most: the newest of a longer gap,
    # in ceil(n / 1000) requests (about 3.5 days of 1m bars); 0 = no gap fill.
    gap_fill_max_bars: int = 5000
    # markPrice: a USDⓈ-M perpetual's mark price and funding rate (ws_url wss://fstream.binance.com),
    # published as the funding settled at each funding time; bookTicker: best bid/ask as Quote
    # events (for the shadow venue's `book` fill model). Neither by default.
    streams: list[Literal["kline", "trade", "markPrice", "bookTicker"]] = msgspec.field(
        default_factory=lambda: ["kline", "trade"])
    replay: list[str] = []  # kline/trade/bookTicker/funding rate files; when set, replay them instead of the websocket
    speed: float = 0.0  # replay speed as a multiple of real time; 0 = as fast as possible
    max_reconnect_delay_s: float = 30.0
    max_reconnect_attempts: int = 20  # in a row without a message; then ingest stops and says so

    def __post_init__(self) -> None:
        for symbol in self.symbols:
            check_token(symbol, "symbol")
        if self.gap_fill_max_bars < 0:
            raise ValueError("ingest.gap_fill_max_bars must be >= 0 (0 = no gap fill from REST)")
        if self.speed < 0:
            raise ValueError("ingest.speed must be >= 0 (0 = as fast as possible)")
