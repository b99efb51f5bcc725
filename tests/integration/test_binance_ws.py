"""The Binance websocket client against a local server replaying a real capture, with a
dropped connection in the middle; and message parsing on real Binance messages."""

from __future__ import annotations

import asyncio
import gzip
import json
from decimal import Decimal
from itertools import islice
from pathlib import Path

import pytest
from websockets.asyncio.server import ServerConnection, serve

from bosun.runtime.embedded import free_port
from proto.events import Bar, Quote, Trade
from services.ingest.binance_ws import BinanceStream, StreamUnavailable, combined_stream_url, parse_message
from tests.datafiles import BTC_WS_CAPTURE, USDM_BTC_WS_CAPTURE, data_file

USDM_FIXTURE = "ws_fixtures/cryptofeed_binance_usdm_ws_2021-07-22.jsonl.gz"


def capture_messages(path: Path, lines: int) -> list[str]:
    """The exact stream messages of the capture's first `lines` lines (its compact JSON
    re-dump is byte-identical to what Binance sent), without the REST snapshot."""
    with gzip.open(path, "rt") as f:
        msgs = [json.loads(line)["msg"] for line in islice(f, lines)]
    return [json.dumps(m, separators=(",", ":")) for m in msgs if "stream" in m]


def trade_of(msg: str) -> Trade | None:
    """What the capture says the trade is, read straight from its JSON."""
    data = json.loads(msg)["data"]
    if data.get("e") != "trade":
        return None
    return Trade(id=f"binance.{data['s']}.{data['t']}", ts_event=data["T"] * 1_000_000, venue="binance",
                 symbol=data["s"], price=Decimal(data["p"]), qty=Decimal(data["q"]),
                 aggressor="sell" if data["m"] else "buy")


class DroppingServer:
    """Sends the first part of the messages, waits until the client has them, drops the
    connection without a close frame; the next connection gets the rest."""

    def __init__(self, first: list[str], rest: list[str]) -> None:
        self.parts = [first, rest]
        self.connections = 0
        self.first_part_received = asyncio.Event()
        self.done = asyncio.Event()

    async def handler(self, ws: ServerConnection) -> None:
        part = self.parts[min(self.connections, 1)]
        self.connections += 1
        for msg in part:
            await ws.send(msg)
        if self.connections == 1:
            await self.first_part_received.wait()
            ws.transport.abort()
        else:
            await self.done.wait()


async def test_stream_survives_a_dropped_connection_and_parses_every_trade() -> None:
    # Not the bookTicker messages: this stream asks for trades (the depth stays, as noise to skip).
    msgs = [m for m in capture_messages(data_file(BTC_WS_CAPTURE), 2000) if "@bookTicker" not in m]
    # End on a trade: the client stops at the last one with nothing left unread, so its
    # closing handshake is not queued behind depth updates it will never read.
    msgs = msgs[:max(i for i, m in enumerate(msgs) if trade_of(m)) + 1]
    expected = [t for t in map(trade_of, msgs) if t is not None]
    assert len(msgs) > 400 and len(expected) > 200
    # Drop right after a trade in the middle, so trades arrive both before and after.
    split = next(i for i, m in enumerate(msgs) if i > len(msgs) // 2 and trade_of(m)) + 1
    before_drop = sum(1 for m in msgs[:split] if trade_of(m))
    server = DroppingServer(msgs[:split], msgs[split:])

    async with serve(server.handler, "127.0.0.1", 0) as ws_server:
        port = ws_server.sockets[0].getsockname()[1]
        stream = BinanceStream(f"ws://127.0.0.1:{port}/stream?streams=btcusdt@trade",
                               max_reconnect_delay_s=0.01, max_attempts=3)
        received: list[Bar | Trade] = []
        events = stream.events()
        async with asyncio.timeout(20):
            async for event in events:
                received.append(event)
                if len(received) == before_drop:
                    assert stream.reconnects == 0
                    server.first_part_received.set()
                if len(received) == len(expected):
                    break
        await events.aclose()
        server.done.set()

    assert received == expected
    assert server.connections == 2 and stream.reconnects == 1
    ids = [int(t.id.rsplit(".", 1)[1]) for t in received]
    assert ids == list(range(ids[0], ids[0] + len(ids)))  # none lost, none doubled around the drop
    assert stream.malformed == 0


async def test_unreachable_stream_gives_up_after_max_attempts_and_suggests_replay() -> None:
    stream = BinanceStream(f"ws://127.0.0.1:{free_port()}/stream?streams=btcusdt@trade",
                           max_reconnect_delay_s=0.01, max_attempts=3)
    with pytest.raises(StreamUnavailable, match=r"3 connection attempts in a row failed.*--replay"):
        async with asyncio.timeout(20):
            async for _ in stream.events():
                pass
    assert stream.reconnects == 0 and not stream.connected


async def test_a_stream_never_reached_gives_up_after_the_start_attempts_even_without_a_limit() -> None:
    stream = BinanceStream(f"ws://127.0.0.1:{free_port()}/stream?streams=btcusdt@trade",
                           max_reconnect_delay_s=0.01, max_attempts=None, start_attempts=2)
    with pytest.raises(StreamUnavailable, match=r"2 connection attempts in a row failed"):
        async with asyncio.timeout(20):
            async for _ in stream.events():
                pass


async def test_backoff_delays_grow_with_full_jitter_and_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    delays: list[float] = []

    async def record(seconds: float) -> None:
        delays.append(seconds)

    monkeypatch.setattr("services.ingest.binance_ws.asyncio.sleep", record)
    stream = BinanceStream(f"ws://127.0.0.1:{free_port()}/", max_reconnect_delay_s=3.0, max_attempts=6,
                           rng=lambda: 0.5)
    with pytest.raises(StreamUnavailable):
        async for _ in stream.events():
            pass
    # rng() x min(3 s, 0.5 s x 2^failures) after failures 1..5
    assert delays == [0.5, 1.0, 1.5, 1.5, 1.5]


# ----------------------------------------------------------------------------- parsing


def test_combined_stream_url() -> None:
    assert combined_stream_url("wss://stream.binance.com:9443/", ["BTCUSDT", "ETHUSDT"]) == (
        "wss://stream.binance.com:9443/stream?streams=btcusdt@kline_1m/btcusdt@trade/"
        "ethusdt@kline_1m/ethusdt@trade")
    with pytest.raises(ValueError, match="at least one symbol"):
        combined_stream_url("wss://x", [])


def test_parse_real_trade_and_ignore_other_streams() -> None:
    msgs = capture_messages(data_file(BTC_WS_CAPTURE), 50)
    trade_msg = next(m for m in msgs if '"e":"trade"' in m)
    assert parse_message(trade_msg) == trade_of(trade_msg)
    assert parse_message(trade_msg.encode()) == trade_of(trade_msg)
    others = [m for m in msgs if "@trade" not in m and "@bookTicker" not in m]
    assert others and all(parse_message(m) is None for m in others)  # depth


@pytest.mark.parametrize("capture", [BTC_WS_CAPTURE, USDM_BTC_WS_CAPTURE])
def test_parse_real_book_tickers_as_quotes_stamped_by_the_exchange_or_on_receipt(capture: str) -> None:
    msgs = [m for m in capture_messages(data_file(capture), 200) if "@bookTicker" in m]
    quotes = [parse_message(m, received_ns=42) for m in msgs]
    assert quotes and all(type(q) is Quote for q in quotes)
    data = json.loads(msgs[0])["data"]
    first = quotes[0]
    assert (first.id, first.symbol, first.bid, first.bid_qty, first.ask, first.ask_qty) == (
        f"binance.BTCUSDT.q{data['u']}", "BTCUSDT", Decimal(data["b"]), Decimal(data["B"]), Decimal(data["a"]),
        Decimal(data["A"]))
    # Futures carry the exchange's transaction time; spot carries none, so the receive time stands.
    assert first.ts_event == (data["T"] * 1_000_000 if "T" in data else 42)
    with pytest.raises(ValueError, match="bookTicker message lacks field 'A'"):
        parse_message(msgs[0].replace('"A":', '"Z":'))


def test_parse_real_klines_only_when_closed() -> None:
    with gzip.open(data_file(USDM_FIXTURE), "rt") as f:
        lines = [json.loads(line)["msg"] for line in f]
    klines = [json.dumps(m, separators=(",", ":")) for m in lines
              if isinstance(m, dict) and "@kline_1m" in m.get("stream", "")]
    bars = [b for b in map(parse_message, klines) if b is not None]
    assert len(klines) == 67 and len(bars) == 4
    sushi = next(b for b in bars if b.symbol == "SUSHIUSDT")
    assert sushi == Bar(id="binance.SUSHIUSDT.1m.1626992700000000000", ts_event=1626992760000000000,
                        venue="binance", symbol="SUSHIUSDT", interval="1m", ts_open=1626992700000000000,
                        open=Decimal("7.6080"), high=Decimal("7.6180"), low=Decimal("7.6070"),
                        close=Decimal("7.6170"), volume=Decimal("3005"))


@pytest.mark.parametrize(("raw", "problem"), [
    ('{"stream":"btcusdt@trade","data":{"e":"trade"', "malformed Binance message"),
    ("[1, 2]", "not a JSON object"),
    ('{"stream":"btcusdt@trade","data":{"e":"trade","s":"BTCUSDT","t":1,"q":"1","T":2,"m":true}}',
     "trade message lacks field 'p'"),
    ('{"stream":"btcusdt@trade","data":{"e":"trade","s":"BTCUSDT","t":1,"p":"NaN","q":"1","T":2,"m":true}}',
     "trade message has a bad value"),
])
def test_parse_errors_name_the_problem(raw: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_message(raw)
