"""How far behind the durable consumers are: what replays wait on so that "as fast as
possible" never runs further ahead of the platform than a bounded window."""

from __future__ import annotations

import asyncio
import time

from nats.js import JetStreamContext

POLL_S = 0.02


async def durable_backlog(js: JetStreamContext) -> int:
    """Messages stored but not yet delivered, or delivered but not yet acked, over every durable
    consumer a running service is bound to (one left behind by a service or a config of the
    past would otherwise hold a replay back for ever)."""
    backlog = 0
    for stream in await js.streams_info():
        for consumer in await js.consumers_info(stream.config.name):
            if consumer.config.durable_name and consumer.push_bound:
                backlog += (consumer.num_pending or 0) + (consumer.num_ack_pending or 0)
    return backlog


async def until_drained(js: JetStreamContext, timeout_s: float) -> bool:
    """Wait until every durable consumer has handled everything; False if it took over `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while await durable_backlog(js):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(POLL_S)
    return True
