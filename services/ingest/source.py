"""Where ingest's market data comes from: recorded files when `replay` is configured
(paper mode), else the live Binance websocket."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from proto.events import Bar, Quote, Trade
from services.ingest.binance_rest import KlineHistory
from services.ingest.config import IngestConfig
from services.ingest.binance_ws import BinanceStream, combined_stream_url
from services.ingest.newest import Newest, Stored
from services.ingest.pacing import replay
from services.ingest.replay import recorded

_DONE = object()
START_ATTEMPTS = 3  # an unreachable stream at start is reported within seconds


def market_events(cfg: IngestConfig, stored: Stored = Stored()) -> AsyncIterator[Bar | Trade | Quote]:
    """The events after what the platform has (`stored`): a replay skips what it published before
    a restart (before pacing, so a restart does not wait through it); the websocket fills the gap
    since the newest stored bar from REST history."""
    if cfg.replay:  # trade files with the bars of cfg.interval built from them, as a backtest reads them
        return replay(Newest(stored).after(recorded(cfg.replay, cfg.interval, cfg.venue)), cfg.speed)
    history = None
    if cfg.gap_fill_max_bars and "kline" in cfg.streams:
        history = KlineHistory(cfg.rest_url, cfg.interval, max_bars=cfg.gap_fill_max_bars, venue=cfg.venue)
    since = {symbol: bar.ts_event for (venue, symbol), bar in stored.bars.items()
             if venue == cfg.venue and symbol in cfg.symbols and bar.interval == cfg.interval}
    return BinanceStream(websocket_url(cfg), max_reconnect_delay_s=cfg.max_reconnect_delay_s,
                         max_attempts=cfg.max_reconnect_attempts, start_attempts=START_ATTEMPTS,
                         venue=cfg.venue, history=history, since=since).events()


def websocket_url(cfg: IngestConfig) -> str:
    """The combined stream of every configured symbol: `kline` means klines of cfg.interval,
    `markPrice` the mark price and funding rate every second."""
    names = {"kline": f"kline_{cfg.interval}", "markPrice": "markPrice@1s"}
    streams = [names.get(s, s) for s in cfg.streams]
    return combined_stream_url(cfg.ws_url, cfg.symbols, streams)


async def batches(events: AsyncIterator[Bar | Trade | Quote],
                  max_size: int) -> AsyncIterator[list[Bar | Trade | Quote]]:
    """What has arrived, up to `max_size` at a time, without waiting to fill a batch: under load
    one publish round (and one price put per symbol) serves many events; when quiet, each goes
    alone. A bounded queue holds the source back when the publisher falls behind."""
    queue: asyncio.Queue[Bar | Trade | Quote | BaseException | None] = asyncio.Queue(2 * max_size)

    async def read() -> None:
        try:
            async for event in events:
                await queue.put(event)
            await queue.put(None)
        except Exception as exc:  # StreamUnavailable and the like: raised to the consumer
            await queue.put(exc)

    reader = asyncio.create_task(read())
    try:
        end: object = None  # set once the source is exhausted (_DONE) or failed (the error)
        while end is None:
            batch: list[Bar | Trade | Quote] = []
            item = await queue.get()
            while True:
                if item is None or isinstance(item, BaseException):
                    end = _DONE if item is None else item
                    break
                batch.append(item)
                if len(batch) >= max_size or queue.empty():
                    break
                item = queue.get_nowait()
            if batch:
                yield batch
        if isinstance(end, BaseException):
            raise end
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
