"""The simulator as a server: `bosun exchange-sim`, or `serving(...)` in-process for tests.

Time: the market moves only by replaying the data. With `speed` 0 (the default in tests) it moves
when told, by `POST /sim/advance`, so tests are deterministic without sleeps; with `speed` > 0 a
task replays the trades at that multiple of real time from the file's first trade (what `bosun
exchange-sim --speed 1` does for a rehearsal). Order, fill and server times are the wall clock, as
on a live venue; the replay's own time is `market_ms` in `GET /sim/state`."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from aiohttp import web

from bosun.apps.exchange_sim.auth import Credentials
from bosun.apps.exchange_sim.balances import Balances
from bosun.apps.exchange_sim.bybit import PRIVATE_WS, BybitPrivateStream, BybitRest
from bosun.apps.exchange_sim.config import SimConfig
from bosun.apps.exchange_sim.exchange import Exchange
from bosun.apps.exchange_sim.faults import FaultState
from bosun.apps.exchange_sim.market import Replay
from bosun.apps.exchange_sim.market_stream import MarketStreams
from bosun.apps.exchange_sim.rest import Rest
from bosun.apps.exchange_sim.stream import UserStreams
from bosun.runtime.config import ConfigError

PACE_S = 0.05  # how often the paced replay catches up with the wall clock


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class Simulator:
    def __init__(self, config: SimConfig, credentials: Credentials, clock: Callable[[], int] = wall_ms) -> None:
        if config.speed < 0:
            raise ConfigError(f"speed must be >= 0, got {config.speed}")
        if not 0 <= config.fee_bps < 10_000:
            raise ConfigError(f"fee_bps must be between 0 and 10000, got {config.fee_bps}")
        try:
            replay = Replay(Path(p) for p in config.data)
            balances = Balances(dict(config.balances))
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        self.config = config
        self.exchange = Exchange(replay, balances, config.fee_bps / 10_000, clock)
        self.faults = FaultState()
        self.streams = UserStreams(credentials, self.faults, clock)
        self.exchange.subscribers.append(self.streams.publish)
        self.app = web.Application()
        self.rest = Rest(self.exchange, credentials, self.faults, self.streams)
        self.rest.routes(self.app)
        self.app.router.add_get("/ws/{listen_key}", self.streams.listen_key_stream)
        self.app.router.add_get("/ws-api/v3", self.streams.ws_api)
        BybitRest(self.rest).routes(self.app)  # Bybit's v5 dialect, on the same engine and port
        self.app.router.add_get(PRIVATE_WS, BybitPrivateStream(self.exchange, credentials, self.streams).serve)
        self.market = MarketStreams(list(replay.rules), self.exchange.market_ms, clock)
        self.exchange.tick_subscribers.append(self.market.on_tick)
        self.app.router.add_get("/stream", self.market.serve)
        self.url = ""

    async def pace(self) -> None:
        """Replay at `speed` times real time from where the market stands."""
        start_market, start_wall = self.exchange.market_ms, time.monotonic()
        while self.exchange.replay.peek() is not None:
            await asyncio.sleep(PACE_S)
            elapsed_ms = (time.monotonic() - start_wall) * 1000 * self.config.speed
            self.exchange.advance(until_ms=start_market + int(elapsed_ms))


@contextlib.asynccontextmanager
async def serving(config: SimConfig, credentials: Credentials, host: str = "127.0.0.1",
                  port: int = 0) -> AsyncIterator[Simulator]:
    """The simulator listening on host:port (0: a free port); `sim.url` is its http base URL."""
    sim = Simulator(config, credentials)
    runner = web.AppRunner(sim.app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0]
    sim.url = f"http://{bound[0]}:{bound[1]}"
    pacer = asyncio.create_task(sim.pace()) if config.speed > 0 else None
    try:
        yield sim
    finally:
        if pacer is not None:
            pacer.cancel()
        await runner.cleanup()
