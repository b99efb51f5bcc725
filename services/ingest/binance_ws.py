"""Binance public market-data websocket: closed klines and trades from a combined stream,
reconnecting with bounded, jittered exponential backoff when the connection drops."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import msgspec
import websockets
from websockets.asyncio.client import connect

from proto.events import Bar, Quote, Trade
from services.ingest.bars import bar_id_prefix, trade_id_prefix
from services.ingest.funding import MarkPriceUpdate, mark_price_update

if TYPE_CHECKING:
    from services.ingest.binance_rest import KlineHistory

log = logging.getLogger(__name__)

FIRST_RECONNECT_DELAY_S = 0.5
OPEN_TIMEOUT_S = 10.0
# Stopping with unread messages queued stalls the closing handshake until this timeout
# (the library stops reading when its bounded queue is full); keep shutdown short.
CLOSE_TIMEOUT_S = 1.0


class StreamUnavailable(RuntimeError):
    pass


def combined_stream_url(base: str, symbols: Iterable[str], streams: Iterable[str] = ("kline_1m", "trade")) -> str:
    """`<base>/stream?streams=btcusdt@kline_1m/btcusdt@trade/...`"""
    streams = list(streams)
    names = [f"{symbol.lower()}@{stream}" for symbol in symbols for stream in streams]
    if not names:
        raise ValueError("a Binance combined stream needs at least one symbol and one stream")
    return f"{base.rstrip('/')}/stream?streams={'/'.join(names)}"


def parse_message(raw: str | bytes, venue: str = "binance", received_ns: int = 0
                  ) -> Bar | Trade | Quote | MarkPriceUpdate | None:
    """A closed kline as a Bar, a trade as a Trade, a bookTicker as a Quote, a USDⓈ-M mark price
    (with its funding rate) as a MarkPriceUpdate, anything else (open klines, depth, replies)
    None. Accepts the combined-stream envelope or a bare event. A spot bookTicker has no time of
    its own: it is stamped `received_ns`."""
    try:
        msg = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise ValueError(f"malformed Binance message ({exc}): {_excerpt(raw)}") from None
    if not isinstance(msg, dict):
        raise ValueError(f"malformed Binance message (not a JSON object): {_excerpt(raw)}")
    data = msg.get("data", msg)
    if not isinstance(data, dict):
        return None
    kind = data.get("e")
    try:
        if kind == "kline":
            return _bar(data["k"], venue)
        if kind == "trade":
            return _trade(data, venue)
        if kind == "markPriceUpdate":
            return mark_price_update(data, venue)
        if kind == "bookTicker" or (kind is None and "u" in data and "b" in data and "a" in data):  # spot: no "e"
            kind = "bookTicker"
            return _quote(data, venue, received_ns)
    except KeyError as exc:
        raise ValueError(f"Binance {kind} message lacks field {exc.args[0]!r}: {_excerpt(raw)}") from None
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise ValueError(f"Binance {kind} message has a bad value ({exc!r}): {_excerpt(raw)}") from None
    return None


def _bar(k: dict[str, Any], venue: str) -> Bar | None:
    if k["x"] is not True:  # still open: its values will change
        return None
    return kline_bar(k, venue)


def kline_bar(k: dict[str, Any], venue: str) -> Bar:
    """A closed kline's fields (open/close times in ms, values as strings) as a Bar."""
    symbol, interval, ts_open = k["s"], k["i"], int(k["t"]) * 1_000_000
    return Bar(id=f"{bar_id_prefix(venue, symbol, interval)}{ts_open}", ts_event=(int(k["T"]) + 1) * 1_000_000,
               venue=venue, symbol=symbol, interval=interval, ts_open=ts_open,
               open=_decimal(k["o"]), high=_decimal(k["h"]), low=_decimal(k["l"]), close=_decimal(k["c"]),
               volume=_decimal(k["v"]))


def _trade(d: dict[str, Any], venue: str) -> Trade:
    symbol = d["s"]
    return Trade(id=f"{trade_id_prefix(venue, symbol)}{int(d['t'])}", ts_event=int(d["T"]) * 1_000_000,
                 venue=venue, symbol=symbol, price=_decimal(d["p"]), qty=_decimal(d["q"]),
                 aggressor="sell" if d["m"] else "buy")


def _quote(d: dict[str, Any], venue: str, received_ns: int) -> Quote:
    symbol = d["s"]
    ts = int(d["T"]) * 1_000_000 if "T" in d else received_ns  # futures: the exchange's transaction time
    return Quote(id=f"{venue}.{symbol}.q{int(d['u'])}", ts_event=ts, venue=venue, symbol=symbol,
                 bid=_decimal(d["b"]), bid_qty=_decimal(d["B"]), ask=_decimal(d["a"]), ask_qty=_decimal(d["A"]))


def _decimal(text: str) -> Decimal:
    value = Decimal(text)
    if not value.is_finite():
        raise ValueError(f"{text!r} is not a finite number")
    return value


def _excerpt(raw: str | bytes) -> str:
    text = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
    return repr(text[:200])


class BinanceStream:
    """Events from one combined-stream URL, across reconnects.

    After a dropped or closed connection it reconnects after a delay drawn uniformly from
    [0, min(max_reconnect_delay_s, 0.5 s x 2^failures)] ("full jitter"), where failures
    counts the attempts in a row that brought no message (a message resets it). With
    `max_attempts`, that many such attempts in a row raise StreamUnavailable; without,
    it keeps trying. Before the first connection succeeds, `start_attempts` failures are
    enough: a stream that cannot be reached at all is said plainly, and soon.

    With a `history`, each connection first yields the closed bars missed since the newest bar
    of each symbol (`since`: symbol -> that bar's ts_event, from the platform at start, then
    from the bars yielded), read from REST once the websocket is open, so nothing falls between
    the two; what overlaps is left to the ingest actor, which publishes nothing it has."""

    def __init__(self, url: str, *, max_reconnect_delay_s: float = 30.0, max_attempts: int | None = None,
                 start_attempts: int | None = None, rng: Callable[[], float] = random.random,
                 venue: str = "binance", history: KlineHistory | None = None,
                 since: Mapping[str, int] | None = None, clock: Callable[[], int] = time.time_ns) -> None:
        if max_reconnect_delay_s <= 0:
            raise ValueError(f"max_reconnect_delay_s must be > 0, got {max_reconnect_delay_s}")
        if max_attempts is not None and max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1 or None, got {max_attempts}")
        self.url = url
        self.venue = venue
        self.max_reconnect_delay_s = max_reconnect_delay_s
        self.max_attempts = max_attempts
        self.start_attempts = start_attempts if start_attempts is not None else max_attempts
        self._rng = rng
        self.history = history
        self._since = dict(since or {})
        self._clock = clock
        self.filled = 0  # bars from REST history
        self.connected = False
        self.reconnects = 0  # successful connections after the first
        self.malformed = 0  # messages skipped because they could not be parsed

    async def events(self) -> AsyncIterator[Bar | Trade | Quote]:
        try:
            async for event in self._events():
                yield event
        finally:
            if self.history is not None:
                await self.history.aclose()

    async def _events(self) -> AsyncIterator[Bar | Trade | Quote]:
        failures = 0  # connection attempts in a row that brought no message
        ever_connected = False
        while True:
            error: BaseException | None = None
            failures += 1
            try:
                async with connect(self.url, open_timeout=OPEN_TIMEOUT_S, close_timeout=CLOSE_TIMEOUT_S) as ws:
                    self.connected = True
                    if ever_connected:
                        self.reconnects += 1
                        log.info("reconnected to %s (%d reconnects)", self.url, self.reconnects)
                    ever_connected = True
                    for bar in await self._missed_bars():
                        yield self._seen(bar)
                    async for raw in ws:
                        failures = 0
                        event = self._parse(raw)
                        if event is not None:
                            yield self._seen(event)
            except (OSError, asyncio.TimeoutError, websockets.exceptions.WebSocketException) as exc:
                error = exc
            finally:
                self.connected = False
            limit = self.max_attempts if ever_connected else self.start_attempts
            if limit is not None and failures >= limit:
                raise StreamUnavailable(
                    f"cannot reach the Binance stream at {self.url}: {failures} connection attempts in a row "
                    f"failed (last: {error or 'closed without a message'}). Check the network, or run on "
                    f"recorded data with --replay FILE.")
            delay = self._rng() * min(self.max_reconnect_delay_s, FIRST_RECONNECT_DELAY_S * 2 ** failures)
            log.warning("Binance stream %s lost (%s); reconnecting in %.2f s", self.url,
                        error or "closed by the server", delay)
            await asyncio.sleep(delay)

    def _seen(self, event: Bar | Trade | Quote) -> Bar | Trade | Quote:
        if type(event) is Bar and event.ts_event > self._since.get(event.symbol, -1):
            self._since[event.symbol] = event.ts_event
        return event

    async def _missed_bars(self) -> list[Bar]:
        if self.history is None:
            return []
        bars: list[Bar] = []
        for symbol, after in sorted(self._since.items()):
            try:
                missed = await self.history.closed_bars(symbol, after, self._clock())
            except Exception as exc:  # HistoryUnavailable, a bug: live data goes on without the gap
                log.error("ingest: the gap of %s since %d ns is not filled: %s", symbol, after, exc)
                continue
            if missed:
                log.info("ingest: filled %d %s bars of %s from REST history", len(missed), self.history.interval,
                         symbol)
            bars.extend(missed)
        self.filled += len(bars)
        return sorted(bars, key=lambda b: b.ts_event)

    def _parse(self, raw: str | bytes) -> Bar | Trade | Quote | None:
        try:
            return parse_message(raw, self.venue, self._clock())
        except ValueError as exc:
            self.malformed += 1
            log.error("skipping a Binance message: %s", exc)
            return None
