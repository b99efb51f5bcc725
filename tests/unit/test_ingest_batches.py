"""Ingest publishes what has arrived in batches: order kept, size bounded, errors raised."""

from __future__ import annotations

import asyncio

import pytest

from services.ingest.binance_ws import StreamUnavailable
from services.ingest.source import batches


async def ready(items):
    for item in items:
        yield item


async def test_a_fast_source_is_batched_in_order_and_within_the_bound():
    got = [batch async for batch in batches(ready(range(100)), 32)]
    assert [x for batch in got for x in batch] == list(range(100))
    assert max(map(len, got)) <= 32 and len(got) < 100


async def test_a_quiet_source_goes_one_event_at_a_time():
    gates = [asyncio.Event() for _ in range(3)]

    async def paced():
        for i, gate in enumerate(gates):
            await gate.wait()
            yield i

    got = []
    stream = batches(paced(), 32)
    for gate in gates:
        gate.set()
        got.append(await anext(stream))
    assert got == [[0], [1], [2]]
    await stream.aclose()


async def test_a_source_failure_reaches_the_consumer_after_what_came_before():
    async def failing():
        yield 1
        raise StreamUnavailable("cannot reach the stream")

    got = []
    with pytest.raises(StreamUnavailable, match="cannot reach the stream"):
        async for batch in batches(failing(), 8):
            got.extend(batch)
    assert got == [1]
