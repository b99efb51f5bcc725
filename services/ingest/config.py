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
    streams: list[Literal["kline", "trade"]] = msgspec.field(default_factory=lambda: ["kline", "trade"])
    replay: list[str] = []  # kline/trade files; when set, replay them instead of the websocket
    speed: float = 0.0  # replay speed as a multiple of real time; 0 = as fast as possible
    max_reconnect_delay_s: float = 30.0
    max_reconnect_attempts: int = 20  # in a row without a message; then ingest stops and says so

    def __post_init__(self) -> None:
        for symbol in self.symbols:
            check_token(symbol, "symbol")
        if self.speed < 0:
            raise ValueError("ingest.speed must be >= 0 (0 = as fast as possible)")
