"""Waiting for NATS messages in tests: on the expected message, with a timeout, never a sleep."""

from __future__ import annotations

import asyncio
import time
from types import TracebackType

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext, api


class Collector:
    """Subscribe first, trigger, then `await wait(n)`:

        async with Collector(nc, "dlq.svc") as dlq:
            await js.publish(...)
            [msg] = await dlq.wait(1)
    """

    def __init__(self, nc: Client, subject: str) -> None:
        self.nc = nc
        self.subject = subject
        self.messages: list[Msg] = []
        self._arrived = asyncio.Event()
        self._sub: Subscription | None = None

    async def _on(self, msg: Msg) -> None:
        self.messages.append(msg)
        self._arrived.set()

    async def __aenter__(self) -> "Collector":
        self._sub = await self.nc.subscribe(self.subject, cb=self._on)
        await self.nc.flush()  # the server knows the interest before the caller triggers anything
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()

    async def wait(self, n: int = 1, timeout: float = 5.0) -> list[Msg]:
        """The first `n` messages, or an AssertionError saying how many arrived."""
        deadline = time.monotonic() + timeout
        while len(self.messages) < n:
            self._arrived.clear()
            remaining = deadline - time.monotonic()
            try:
                await asyncio.wait_for(self._arrived.wait(), max(remaining, 0))
            except TimeoutError:
                raise AssertionError(f"{len(self.messages)} of {n} messages on {self.subject} "
                                     f"within {timeout}s") from None
        return self.messages[:n]


async def next_message(nc: Client, subject: str, timeout: float = 5.0) -> Msg:
    """The next message published on `subject` from now on."""
    async with Collector(nc, subject) as c:
        return (await c.wait(1, timeout))[0]


async def stream_messages(js: JetStreamContext, subject: str, n: int, timeout: float = 5.0) -> list[Msg]:
    """The first `n` messages stored in JetStream on `subject` (waits for them to be stored)."""
    sub = await js.subscribe(subject, ordered_consumer=True, deliver_policy=api.DeliverPolicy.ALL)
    try:
        deadline = time.monotonic() + timeout
        out = []
        while len(out) < n:
            try:
                out.append(await sub.next_msg(timeout=max(deadline - time.monotonic(), 0.001)))
            except TimeoutError:
                raise AssertionError(f"{len(out)} of {n} stored messages on {subject} within {timeout}s") from None
        return out
    finally:
        await sub.unsubscribe()


async def stored_count(js: JetStreamContext, stream: str, subject: str) -> int:
    """How many messages `stream` holds on subjects matching `subject`."""
    info = await js.stream_info(stream, subjects_filter=subject)
    return sum((info.state.subjects or {}).values())


async def stored_count_once(js: JetStreamContext, stream: str, subject: str, n: int, timeout: float = 5.0) -> int:
    """stored_count once it reaches `n` (or at the deadline): a core subscriber can see a message
    before the stream's store of it is done, so a count read right after may be short. A bounded poll."""
    deadline = time.monotonic() + timeout
    while (count := await stored_count(js, stream, subject)) < n and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    return count


async def acked(js: JetStreamContext, stream: str, consumer: str, n: int, timeout: float = 5.0) -> api.ConsumerInfo:
    """The consumer's info once its first `n` deliveries are acked. An ack is a
    fire-and-forget publish the server applies asynchronously: this polls for it."""
    deadline = time.monotonic() + timeout
    while True:
        info = await js.consumer_info(stream, consumer)
        if info.ack_floor.consumer_seq >= n:
            return info
        if time.monotonic() > deadline:
            raise AssertionError(f"{stream}/{consumer}: {info.ack_floor.consumer_seq} of {n} acked within {timeout}s")
        await asyncio.sleep(0.005)
