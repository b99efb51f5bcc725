"""How far behind the durable consumers are: what `bosun up --exit-when-done` waits on, and
what bounds how far a replay at full speed runs ahead of the platform."""

from __future__ import annotations

import asyncio
import time

from nats.errors import NoRespondersError, TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.errors import APIError

POLL_S = 0.005


def _behind(consumer) -> int:
    return (consumer.num_pending or 0) + (consumer.num_ack_pending or 0)


def _serving(consumer) -> bool:
    # A durable left behind by a service or a config of the past has no subscriber: it would
    # hold a replay back for ever.
    return bool(consumer.config.durable_name and consumer.push_bound)


async def durable_backlog(js: JetStreamContext) -> int:
    """Messages stored but not yet delivered, or delivered but not yet acked, over every durable
    consumer a running service is bound to."""
    backlog = 0
    for stream in await js.streams_info():
        for consumer in await js.consumers_info(stream.config.name):
            if _serving(consumer):
                backlog += _behind(consumer)
    return backlog


async def until_behind_at_most(js: JetStreamContext, stream: str, lead: int, timeout_s: float) -> bool:
    """Wait until no running service's durable consumer of `stream` is more than `lead`
    messages behind; False if that took over `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while await _most_behind(js, stream) > lead:
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(POLL_S)
    return True


async def _most_behind(js: JetStreamContext, stream: str) -> float:
    try:
        return max((_behind(c) for c in await js.consumers_info(stream) if _serving(c)), default=0)
    except (NatsTimeout, NoRespondersError, APIError):
        return float("inf")  # unknown while the stream elects a leader (a failover): asked again
