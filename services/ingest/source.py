"""Where ingest's market data comes from: recorded files when `replay` is configured
(paper mode), else the live Binance websocket."""

from __future__ import annotations

from collections.abc import AsyncIterator

from bosun.runtime.config import IngestConfig
from proto.events import Bar, Trade
from services.ingest.binance_ws import BinanceStream, combined_stream_url
from services.ingest.files import read_market_file
from services.ingest.replay import merge_by_time, replay

START_ATTEMPTS = 3  # an unreachable stream at start is reported within seconds


def market_events(cfg: IngestConfig) -> AsyncIterator[Bar | Trade]:
    if cfg.replay:
        # Opened now, so a missing or malformed file fails at start, not mid-run.
        files = [read_market_file(path, venue=cfg.venue) for path in cfg.replay]
        return replay(merge_by_time(files), cfg.speed)
    return BinanceStream(websocket_url(cfg), max_reconnect_delay_s=cfg.max_reconnect_delay_s,
                         max_attempts=cfg.max_reconnect_attempts, start_attempts=START_ATTEMPTS,
                         venue=cfg.venue).events()


def websocket_url(cfg: IngestConfig) -> str:
    """The combined stream of every configured symbol: `kline` means klines of cfg.interval."""
    streams = [f"kline_{cfg.interval}" if s == "kline" else s for s in cfg.streams]
    return combined_stream_url(cfg.ws_url, cfg.symbols, streams)
