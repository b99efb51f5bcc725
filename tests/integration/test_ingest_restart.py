"""Ingest killed (kill -9) in the middle of a replay of real market data and started again
resumes where the platform left it: every bar or trade of the files stored in MARKET exactly
once, none published twice, and the price in KV `prices` never stepping back in time."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import nats
import pytest

from bosun.runtime.embedded import EmbeddedNats
from proto import codec
from proto import events as ev
from services.ingest.bars import bars_from_trades
from services.ingest.files import read_market_file
from tests.datafiles import BTC_1M, BTC_TRADES, ETH_1M, data_file, write_slice
from tests.natshelp import Collector, stream_messages, stored_count
from tests.processes import ServiceProcess, server_env

BARS = 600


@pytest.fixture
def private_nats(tmp_path: Path):
    with EmbeddedNats(tmp_path / "nats") as server:
        yield server.url


def bar_files(tmp_path: Path) -> list[Path]:
    return [write_slice(data_file(name), tmp_path / f"{symbol}_1m.csv", BARS)
            for symbol, name in (("BTCUSDT", BTC_1M), ("ETHUSDT", ETH_1M))]


def trade_files(_: Path) -> list[Path]:
    return [data_file(BTC_TRADES)]  # 19,904 trades, 2,279 milliseconds with more than one (735 in one)


@pytest.mark.parametrize(("files", "kind", "speed", "kill_after"), [
    (bar_files, "bar", 6000.0, 300),  # 100 minutes a second for two symbols: 12 s of replay
    (trade_files, "trade", 100.0, 4000),  # 650 s of trades in 6.5 s
], ids=["bars", "trades"])
async def test_a_killed_replay_resumes_after_what_the_platform_has(tmp_path: Path, private_nats: str, files,
                                                                   kind: str, speed: float, kill_after: int) -> None:
    paths = files(tmp_path)
    events: dict[str, list[ev.Bar | ev.Trade]] = {}
    for path in paths:
        for event in read_market_file(path):
            events.setdefault(f"md.{kind}.binance.{event.symbol}", []).append(event)
    total = sum(map(len, events.values()))
    config = tmp_path / "bosun.toml"
    config.write_text(f"[ingest]\nspeed = {speed}\nreplay = [{', '.join(repr(str(p)) for p in paths)}]\n")
    env = server_env(private_nats)
    nc = await nats.connect(private_nats)
    first = ServiceProcess("ingest", config, tmp_path, env)
    again = ServiceProcess("ingest", config, tmp_path, env)
    try:
        # Core subscribers see every publish, even one JetStream would drop as a duplicate.
        async with Collector(nc, f"md.{kind}.binance.>") as published, \
                Collector(nc, "$KV.prices.binance.>") as prices:
            await first.start(nc)
            await published.wait(kill_after, timeout=60)
            assert first.proc is not None
            first.proc.send_signal(signal.SIGKILL)
            assert await asyncio.to_thread(first.proc.wait, 30) == -signal.SIGKILL
            assert len(published.messages) < total, "the first run was killed in the middle of the replay"

            await again.start(nc)
            assert again.proc is not None
            assert await asyncio.to_thread(again.proc.wait, 60) == 0, again.log_text()  # the replay finished
            await published.wait(total, timeout=10)
            await nc.flush()

        js = nc.jetstream()
        kind_type = ev.Bar if kind == "bar" else ev.Trade
        for subject, expected in events.items():
            ids = [e.id for e in expected]
            assert await stored_count(js, "MARKET", subject) == len(ids)
            stored = [codec.decode(m.data, kind_type).id for m in await stream_messages(js, subject, len(ids))]
            assert stored == ids  # every one of the file, once, in order
            sent = [codec.decode(m.data, kind_type).id for m in published.messages if m.subject == subject]
            assert sent == ids  # the restart published none of them again
            price_subject = subject.replace(f"md.{kind}", "$KV.prices")
            times = [codec.decode(m.data, ev.PriceSnapshot).ts_event for m in prices.messages
                     if m.subject == price_subject]
            # A trade file's replay brings the bars of ingest.interval (1m) built from its trades too: the
            # newest price is then the last bar's, at its close.
            bars = [] if kind == "bar" else list(bars_from_trades(expected, "1m"))  # type: ignore[arg-type]
            if bars:
                assert await stored_count(js, "MARKET", subject.replace("md.trade", "md.bar")) == len(bars)
            assert times == sorted(times) and times[-1] == (bars[-1] if bars else expected[-1]).ts_event
        assert f"resumes after its {kind} of" in again.log_text()
    finally:
        first.stop()
        again.stop()
        await nc.close()
