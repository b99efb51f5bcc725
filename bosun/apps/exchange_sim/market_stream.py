"""Binance's public market streams for the replayed trades: the combined stream
`/stream?streams=btcusdt@trade/btcusdt@kline_1m/...`, which is what ingest reads. So a whole
platform runs live against the simulator: its market data and its fills come from the same
replay.

Times: each event's is the replay's own, shifted by whole minutes so that the first trade falls
at the simulator's start; then prices look as fresh as on a live venue (risk refuses stale ones),
and bars keep their minute boundaries. A kline is sent once closed (`x: true`), when the first
trade of a later interval is replayed; the interval a first subscription began inside is not
sent (it would be partial)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from aiohttp import WSMsgType, web

from bosun.apps.exchange_sim import wire
from bosun.apps.exchange_sim.market import Tick
from bosun.apps.exchange_sim.stream import MAX_CONNECTIONS, Connection
from services.ingest.bars import parse_interval

MINUTE_MS = 60_000
MAX_STREAMS = 1024  # per connection, as Binance allows


@dataclass(slots=True)
class _Kline:
    start_ms: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    whole: bool  # built from its interval's first trade on; the one a subscription began inside is not sent
    trades: int = 1


@dataclass(slots=True)
class _Subscriber:
    connection: Connection
    streams: set[str] = field(default_factory=set)


class MarketStreams:
    def __init__(self, symbols: list[str], first_ms: int, clock: Callable[[], int]) -> None:
        self.symbols = set(symbols)
        # whole minutes: a kline's interval starts where the data's did
        self.shift_ms = (clock() - first_ms) // MINUTE_MS * MINUTE_MS
        self.subscribers: list[_Subscriber] = []
        # (symbol, interval ms) -> the kline being built, from the first request of that stream on
        self._klines: dict[tuple[str, int], _Kline | None] = {}
        self._trade_ids: dict[str, int] = {}

    def on_tick(self, tick: Tick) -> None:
        symbol, t = tick.symbol, tick.time_ms + self.shift_ms
        trade_id = self._trade_ids[symbol] = self._trade_ids.get(symbol, 0) + 1
        self._send(f"{symbol.lower()}@trade", {
            "e": "trade", "E": t, "s": symbol, "t": trade_id, "p": wire.num(tick.price), "q": wire.num(tick.qty),
            "T": t, "m": False, "M": True})
        for key in [k for k in self._klines if k[0] == symbol]:
            kline, interval_ms = self._klines[key], key[1]
            start = t - t % interval_ms
            if kline is not None and start == kline.start_ms:
                kline.high, kline.low = max(kline.high, tick.price), min(kline.low, tick.price)
                kline.close, kline.volume, kline.trades = tick.price, kline.volume + tick.qty, kline.trades + 1
                continue
            if kline is not None and kline.whole:
                self._send(f"{symbol.lower()}@kline_{_name(interval_ms)}", _closed(symbol, interval_ms, kline, t))
            self._klines[key] = _Kline(start, tick.price, tick.price, tick.price, tick.price, tick.qty, kline is not None)

    def _send(self, stream: str, event: dict[str, object]) -> None:
        for subscriber in self.subscribers:
            if stream in subscriber.streams:
                subscriber.connection.offer({"stream": stream, "data": event})

    async def serve(self, request: web.Request) -> web.WebSocketResponse:
        """GET /stream?streams=a/b/c: every named stream's events on one connection."""
        names = [n for n in request.query.get("streams", "").split("/") if n]
        problem = self._check(names)
        if problem:
            raise web.HTTPBadRequest(text=json.dumps({"code": -1100, "msg": problem}), content_type="application/json")
        if sum(len(s.streams) > 0 for s in self.subscribers) >= MAX_CONNECTIONS:
            raise web.HTTPTooManyRequests(text="too many market-stream connections")
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        subscriber = _Subscriber(Connection(ws, request.transport, lambda event: [event]), set(names))
        for name in names:
            if "@kline_" in name:
                symbol, interval = name.split("@kline_")
                self._klines.setdefault((symbol.upper(), parse_interval(interval) // 1_000_000), None)
        self.subscribers.append(subscriber)
        writer = asyncio.create_task(subscriber.connection.write())
        try:
            async for message in ws:
                if message.type == WSMsgType.ERROR:
                    break
        finally:
            self.subscribers.remove(subscriber)
            subscriber.connection.offer(None)
            writer.cancel()
        return ws

    def _check(self, names: list[str]) -> str | None:
        if not names:
            return "no stream named: expected /stream?streams=<symbol>@trade/<symbol>@kline_<interval>"
        if len(names) > MAX_STREAMS:
            return f"{len(names)} streams on one connection: at most {MAX_STREAMS}"
        for name in names:
            symbol, _, kind = name.partition("@")
            if symbol.upper() not in self.symbols or symbol != symbol.lower():
                return f"stream {name!r}: the simulator replays {', '.join(sorted(self.symbols))} (lower case)"
            if kind != "trade" and not kind.startswith("kline_"):
                return f"stream {name!r}: the simulator serves <symbol>@trade and <symbol>@kline_<interval>"
            if kind.startswith("kline_"):
                try:
                    interval_ms = parse_interval(kind.removeprefix("kline_")) // 1_000_000
                except ValueError as exc:
                    return f"stream {name!r}: {exc}"
                if interval_ms < 1000 or interval_ms % 1000:
                    return f"stream {name!r}: an interval of whole seconds"
        return None


def _name(interval_ms: int) -> str:
    for unit, ms in (("d", 86_400_000), ("h", 3_600_000), ("m", MINUTE_MS), ("s", 1000)):
        if interval_ms % ms == 0:
            return f"{interval_ms // ms}{unit}"
    raise ValueError(interval_ms)


def _closed(symbol: str, interval_ms: int, k: _Kline, now_ms: int) -> dict[str, object]:
    return {"e": "kline", "E": now_ms, "s": symbol, "k": {
        "t": k.start_ms, "T": k.start_ms + interval_ms - 1, "s": symbol, "i": _name(interval_ms),
        "o": wire.num(k.open), "c": wire.num(k.close), "h": wire.num(k.high), "l": wire.num(k.low),
        "v": wire.num(k.volume), "n": k.trades, "x": True}}
