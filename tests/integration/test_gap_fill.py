"""A (re)connected Binance websocket first fills the gap since the newest bar from REST kline
history, bounded, against a local REST server and a local websocket server that both serve real
BTCUSDT minutes; the ingest actor then publishes every bar exactly once."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from itertools import islice

import pytest
from aiohttp import web
from websockets.asyncio.server import ServerConnection, serve

from bosun.runtime.clock import SimClock
from bosun.runtime.embedded import free_port
from bosun.runtime.inproc import InProcessBus
from proto.events import Bar
from services.ingest.actor import MarketDataActor
from services.ingest.binance_rest import KlineHistory
from services.ingest.binance_ws import BinanceStream
from services.ingest.files import read_klines
from services.ingest.newest import Stored
from tests.datafiles import BTC_1M, data_file

MINUTE_MS = 60_000
NS_PER_MS = 1_000_000


@pytest.fixture(scope="module")
def bars() -> list[Bar]:
    return list(islice(read_klines(data_file(BTC_1M)), 3200))


def open_ms(bar: Bar) -> int:
    return bar.ts_open // NS_PER_MS


def kline_row(bar: Bar) -> list[object]:
    """The bar as Binance's REST answers it (open/close times in ms, values as strings)."""
    return [open_ms(bar), str(bar.open), str(bar.high), str(bar.low), str(bar.close), str(bar.volume),
            open_ms(bar) + MINUTE_MS - 1, "0", 0, "0", "0", "0"]


def kline_message(bar: Bar) -> str:
    """The closed bar as the combined websocket stream sends it."""
    row = kline_row(bar)
    k = {"t": row[0], "T": row[6], "s": bar.symbol, "i": "1m", "o": row[1], "c": row[4], "h": row[2],
         "l": row[3], "v": row[5], "x": True}
    return json.dumps({"stream": "btcusdt@kline_1m", "data": {"e": "kline", "E": row[6] + 5, "s": bar.symbol,
                                                              "k": k}}, separators=(",", ":"))


class KlineServer:
    """`GET /api/v3/klines?symbol=&interval=&startTime=&limit=` over the real bars."""

    def __init__(self, bars: list[Bar]) -> None:
        self.bars = bars
        self.requests: list[dict[str, str]] = []

    async def klines(self, request: web.Request) -> web.Response:
        q = dict(request.query)
        self.requests.append(q)
        if q.get("symbol") != "BTCUSDT" or q.get("interval") != "1m":
            return web.json_response({"code": -1121, "msg": "Invalid symbol."}, status=400)
        start, limit = int(q["startTime"]), int(q["limit"])
        rows = [kline_row(b) for b in self.bars if open_ms(b) >= start][:limit]
        return web.json_response(rows)


@pytest.fixture
async def rest(bars: list[Bar]) -> AsyncIterator[tuple[str, KlineServer]]:
    server = KlineServer(bars)
    app = web.Application()
    app.router.add_get("/api/v3/klines", server.klines)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", server
    finally:
        await runner.cleanup()


class LiveServer:
    """Connection i sends parts[i] (the last part to every later one); every connection but the
    last is dropped without a close frame once the client has its part."""

    def __init__(self, parts: list[list[Bar]]) -> None:
        self.parts = parts
        self.connections = 0
        self.part_received = asyncio.Event()
        self.done = asyncio.Event()

    def count(self, _connection: ServerConnection, _request: object) -> None:
        # Before the handshake answer: the client's clock below already sees this connection.
        self.connections += 1

    async def handler(self, ws: ServerConnection) -> None:
        n = self.connections
        for bar in self.parts[min(n, len(self.parts)) - 1]:
            await ws.send(kline_message(bar))
        if n < len(self.parts):
            await self.part_received.wait()
            self.part_received.clear()
            ws.transport.abort()
        else:
            await self.done.wait()


async def run_live(bars_out: int, parts: list[list[Bar]], clock: Callable[[LiveServer], int], *,
                   history: KlineHistory | None, stored: Stored) -> tuple[list[Bar], BinanceStream, LiveServer]:
    """Stream -> ingest actor until `bars_out` bars are published; the published bars."""
    live = LiveServer(parts)
    bus = InProcessBus()
    actor = bus.attach(MarketDataActor(SimClock(), bus))
    actor.resume(stored)
    out: list[Bar] = []
    bus.tap(lambda _subject, m: out.append(m) if type(m) is Bar else None)
    ends_of_parts = {p[-1].id for p in parts[:-1]}
    async with serve(live.handler, "127.0.0.1", 0, process_request=live.count) as ws_server:
        port = ws_server.sockets[0].getsockname()[1]
        since = {symbol: bar.ts_event for (_, symbol), bar in stored.bars.items()}
        stream = BinanceStream(f"ws://127.0.0.1:{port}/stream?streams=btcusdt@kline_1m", max_reconnect_delay_s=0.01,
                               max_attempts=3, history=history, since=since, clock=lambda: clock(live))
        events = stream.events()
        async with asyncio.timeout(20):
            async for event in events:
                actor.on_events([event])
                bus.drain()
                if event.id in ends_of_parts:
                    live.part_received.set()
                if len(out) >= bars_out:
                    break
        await events.aclose()
        live.done.set()
    return out, stream, live


def mid_minute(bar: Bar) -> int:
    """A time while `bar` is still open (the bar before it has closed)."""
    return bar.ts_open + 30 * 1_000_000_000


async def test_a_connect_fills_the_gap_since_the_newest_stored_bar_before_live_bars(bars, rest) -> None:
    url, server = rest
    # The platform has bars up to [99]; live sends [148..170] (overlapping the fill by two).
    history = KlineHistory(url, "1m", max_bars=5000)
    out, stream, _ = await run_live(71, [bars[148:171]], lambda _: mid_minute(bars[150]), history=history,
                                    stored=Stored(bars={("binance", "BTCUSDT"): bars[99]}))
    assert out == bars[100:171]  # every bar once, in order: the gap from REST, the rest live
    assert stream.filled == 50 and len(server.requests) == 1
    assert server.requests[0]["startTime"] == str(open_ms(bars[100])) and server.requests[0]["limit"] == "1000"


async def test_a_gap_longer_than_the_bound_fills_its_newest_bars_in_pages(bars, rest) -> None:
    url, server = rest
    # Stored up to [0], now inside [3000]: a gap of 2999 bars; the bound keeps the newest 2500.
    history = KlineHistory(url, "1m", max_bars=2500)
    out, stream, _ = await run_live(2501, [bars[3000:3001]], lambda _: mid_minute(bars[3000]), history=history,
                                    stored=Stored(bars={("binance", "BTCUSDT"): bars[0]}))
    assert out == bars[500:3001]
    assert stream.filled == 2500
    assert [(r["startTime"], r["limit"]) for r in server.requests] == [
        (str(open_ms(bars[500])), "1000"), (str(open_ms(bars[1500])), "1000"), (str(open_ms(bars[2500])), "500")]


async def test_a_reconnect_fills_what_the_dropped_connection_missed(bars, rest) -> None:
    url, server = rest
    # Nothing stored: the first connection fills nothing and sends [100..120]; it drops, and the
    # second sends from [130]: [121..129] come from REST, since the last bar the stream yielded.
    history = KlineHistory(url, "1m", max_bars=5000)
    now = {1: mid_minute(bars[121]), 2: mid_minute(bars[130])}
    out, stream, live = await run_live(41, [bars[100:121], bars[130:141]], lambda s: now[s.connections],
                                       history=history, stored=Stored())
    assert out == bars[100:141]
    assert live.connections == 2 and stream.reconnects == 1
    assert stream.filled == 9 and len(server.requests) == 1


async def test_unreachable_history_is_said_and_live_bars_still_flow(bars, caplog) -> None:
    history = KlineHistory(f"http://127.0.0.1:{free_port()}", "1m", max_bars=100)
    out, stream, _ = await run_live(10, [bars[150:160]], lambda _: mid_minute(bars[160]), history=history,
                                    stored=Stored(bars={("binance", "BTCUSDT"): bars[99]}))
    assert out == bars[150:160] and stream.filled == 0
    assert "the gap of BTCUSDT since" in caplog.text and "is not filled" in caplog.text


def test_history_bound_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_bars must be >= 1"):
        KlineHistory("http://127.0.0.1:1", "1m", max_bars=0)
