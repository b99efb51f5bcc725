"""Ingest killed (kill -9) in the middle of a replay of real minutes and started again resumes
where the platform left it: every bar of the files stored in MARKET exactly once, none published
twice, and the price in KV `prices` never stepping back in time."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import nats
import pytest

from bosun.runtime.embedded import EmbeddedNats
from proto import codec
from proto import events as ev
from services.ingest.files import read_klines
from tests.datafiles import BTC_1M, ETH_1M, data_file, write_slice
from tests.natshelp import Collector, stream_messages, stored_count
from tests.processes import ServiceProcess, server_env

BARS = 600
SPEED = 6000.0  # 100 one-minute bars a second: the kill lands well inside the replay
KILL_AFTER = 150  # BTCUSDT bars published by the first run


@pytest.fixture
def private_nats(tmp_path: Path):
    with EmbeddedNats(tmp_path / "nats") as server:
        yield server.url


async def test_a_killed_replay_resumes_after_the_newest_stored_bar(tmp_path: Path, private_nats: str) -> None:
    files = {symbol: write_slice(data_file(name), tmp_path / f"{symbol}_1m.csv", BARS)
             for symbol, name in (("BTCUSDT", BTC_1M), ("ETHUSDT", ETH_1M))}
    bars = {symbol: list(read_klines(path)) for symbol, path in files.items()}
    config = tmp_path / "bosun.toml"
    config.write_text(f"[ingest]\nsymbols = ['BTCUSDT', 'ETHUSDT']\nspeed = {SPEED}\n"
                      f"replay = [{', '.join(repr(str(p)) for p in files.values())}]\n")
    env = server_env(private_nats)
    nc = await nats.connect(private_nats)
    first = ServiceProcess("ingest", config, tmp_path, env)
    again = ServiceProcess("ingest", config, tmp_path, env)
    try:
        # Core subscribers see every publish, even one JetStream would drop as a duplicate.
        async with Collector(nc, "md.bar.binance.>") as published, Collector(nc, "$KV.prices.binance.>") as prices:
            await first.start(nc)
            await published.wait(KILL_AFTER, timeout=60)
            assert first.proc is not None
            first.proc.send_signal(signal.SIGKILL)
            assert await asyncio.to_thread(first.proc.wait, 30) == -signal.SIGKILL
            killed_at = len(published.messages)
            assert killed_at < 2 * BARS, "the first run was killed in the middle of the replay"

            await again.start(nc)
            assert again.proc is not None
            assert await asyncio.to_thread(again.proc.wait, 60) == 0, again.log_text()  # the replay finished
            await published.wait(2 * BARS, timeout=10)
            await nc.flush()

        js = nc.jetstream()
        for symbol, file_bars in bars.items():
            ids = [b.id for b in file_bars]
            subject = f"md.bar.binance.{symbol}"
            assert await stored_count(js, "MARKET", subject) == BARS
            stored = [codec.decode(m.data, ev.Bar).id for m in await stream_messages(js, subject, BARS)]
            assert stored == ids  # every bar of the file, once, in order
            sent = [codec.decode(m.data, ev.Bar).id for m in published.messages if m.subject == subject]
            assert sent == ids  # the restart published none of them again
            times = [codec.decode(m.data, ev.PriceSnapshot).ts_event for m in prices.messages
                     if m.subject == f"$KV.prices.binance.{symbol}"]
            assert times == sorted(times) and times[-1] == file_bars[-1].ts_event
        assert "resumes after its bar of" in again.log_text()
    finally:
        first.stop()
        again.stop()
        await nc.close()
