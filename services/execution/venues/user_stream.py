"""Fills from an exchange account: its user stream (ccxt.pro's `watch_my_trades`) while that is
up, polling `fetch_my_trades` while it is down.

Per account, one task follows the stream and one polls. The stream counts as up once its
subscription is confirmed; then the poller reads only every `stream_poll_s`, a safety net. When
the stream drops (a NetworkError from the pending watch), the poller reads every `poll_s` until
the stream is back, and once more right after each (re)subscription: what traded between the
drop and the new subscription is found by that read. A fill seen on both ways has the same id
(the exchange's trade id), and the LiveAdapter publishes each id once.

ccxt.pro wakes a watch only for a message that arrives while the watch waits; one that arrives
between two watches waits in ccxt's cache (`exchange.myTrades`, bounded) for the next message,
which may never come. So after each wake the next watch is started first, and then every trade
in the cache not handed on yet is handed on (de-duplicated by trade id): nothing arriving after
that can go unwoken. The safety-net poll covers what the bounded cache lost in a burst."""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from ccxt.base import errors as ccxt_errors

from bosun.model.recent import RecentIds
from proto.events import OrderFilled
from services.execution.venues.ccxt_edge import CcxtEdge
from services.execution.venues.dialects import subscribe_user_stream

log = logging.getLogger(__name__)

Deliver = Callable[[Sequence[OrderFilled]], Awaitable[None]]
FIRST_RETRY_S, MAX_RETRY_S = 0.5, 30.0  # resubscribing after a drop: jittered, doubling, at most this
STREAMED_REMEMBERED = 10_000  # well past ccxt's cache of the newest 1,000 trades


class AccountFills:
    """One account's fills, from its stream or by polling."""

    def __init__(self, edge: CcxtEdge, account: Any, deliver: Deliver) -> None:
        self.edge, self.account, self.deliver = edge, account, deliver
        self.poll_s, self.stream_poll_s = account.cfg.poll_s, account.cfg.stream_poll_s
        self.streaming = hasattr(account.exchange, "watch_my_trades") and account.cfg.user_stream
        self.up = False  # the stream's subscription is confirmed and nothing has broken it since
        self.drops = 0
        self._streamed = RecentIds(STREAMED_REMEMBERED)  # (symbol, trade id) handed on from the stream
        self._changed = asyncio.Event()  # the stream went up or down: the poller's period changes
        self._polled_at = -math.inf  # loop time of the last read by polling

    async def run(self) -> None:
        tasks = [self._poll()] + ([self._follow()] if self.streaming else [])
        await asyncio.gather(*tasks)

    async def _poll(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = self._polled_at + (self.stream_poll_s if self.up else self.poll_s) - loop.time()
            if due <= 0:
                await self._read()
                continue
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), due)
            except asyncio.TimeoutError:
                pass

    async def _read(self) -> None:
        self._polled_at = asyncio.get_running_loop().time()
        await self._deliver(await self.edge.fills([self.account]))

    async def _follow(self) -> None:
        exchange, failures = self.account.exchange, 0
        watching: asyncio.Future[Any] | None = None
        while True:
            try:
                await self._subscribe()
                self.up, failures = True, 0
                self._changed.set()
                log.info("%s: user stream subscribed; fills come from it", self.account.venue)
                await self._read()  # what traded while it was down
                while True:
                    watching = asyncio.ensure_future(exchange.watch_my_trades())
                    await asyncio.sleep(0)  # the watch now waits: a trade from here on wakes it
                    new = [t for t in exchange.myTrades or () if self._streamed.add((t["symbol"], t["id"]))]
                    await self._deliver(self.edge.fills_of(self.account, new))
                    await watching
            except (ccxt_errors.NetworkError, ccxt_errors.ExchangeError) as exc:
                self.up = False
                self.drops += 1
                self._changed.set()
                failures += 1
                delay = random.random() * min(MAX_RETRY_S, FIRST_RETRY_S * 2 ** failures)
                log.warning("%s: user stream lost (%s); polling fills every %ss, resubscribing in %.2fs",
                            self.account.venue, self.account.scrub(f"{type(exc).__name__}: {exc}"), self.poll_s,
                            delay)
                await asyncio.sleep(delay)
            finally:
                if watching is not None:
                    watching.cancel()

    async def _subscribe(self) -> None:
        await subscribe_user_stream(self.account.exchange)

    async def _deliver(self, fills: Sequence[OrderFilled]) -> None:
        if fills:
            await self.deliver(fills)


def followers(edge: CcxtEdge, deliver: Deliver) -> list[AccountFills]:
    return [AccountFills(edge, account, deliver) for account in edge.accounts.values()]


async def follow(accounts: Sequence[AccountFills]) -> None:
    """Every account's fills, until cancelled."""
    await asyncio.gather(*(a.run() for a in accounts))
