"""bosun_consumer_ack_pending_messages: a durable input's messages delivered and not yet acked,
as a real nats-server counts them, and back to 0 once acked."""

from __future__ import annotations

import asyncio
import time
import uuid
from decimal import Decimal

import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext, api
from prometheus_client import REGISTRY

from bosun.runtime import ack_pending
from bosun.runtime.nats_binding import durable_name
from proto import codec
from proto import events as ev
from proto import subjects as sj

pytestmark = pytest.mark.integration


async def until_gauge(service: str, subject: str, wanted: float, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while REGISTRY.get_sample_value("bosun_consumer_ack_pending_messages",
                                    {"service": service, "input": subject}) != wanted:
        assert time.monotonic() < deadline, f"ack pending of {subject} never read {wanted}"
        await asyncio.sleep(0.02)  # the exporter's own period: there is no event to wait on


async def test_ack_pending_counts_what_the_durable_consumer_holds_unacked(nc: Client, js: JetStreamContext) -> None:
    service, client = f"svc{uuid.uuid4().hex[:8]}", f"c{uuid.uuid4().hex[:8]}"
    subject = f"target.proposed.{client}.>"
    for n in range(3):
        t = ev.TargetPosition(id=f"t{n}", ts_event=n, client=client, venue="binance", symbol="BTCUSDT",
                              qty=Decimal(1), strategy="s", price=Decimal(100))
        await js.publish(sj.subject_for(t), codec.encode(t))
    delivered: asyncio.Queue = asyncio.Queue()
    config = api.ConsumerConfig(durable_name=durable_name(service, subject), filter_subject=subject,
                                ack_policy=api.AckPolicy.EXPLICIT, deliver_policy=api.DeliverPolicy.ALL)
    sub = await js.subscribe(subject, durable=config.durable_name, config=config, manual_ack=True,
                             cb=delivered.put)
    exporting = asyncio.create_task(ack_pending.export(js, service, [subject], every_s=0.05))
    try:
        held = [await asyncio.wait_for(delivered.get(), 5) for _ in range(3)]
        await until_gauge(service, subject, 3)
        for msg in held:
            await msg.ack_sync()
        await until_gauge(service, subject, 0)
    finally:
        exporting.cancel()
        await sub.unsubscribe()


def test_only_durable_inputs_are_asked_about_each_once() -> None:
    from bosun.runtime.actor import Delivery, Input

    class Reader:
        def __init__(self, *inputs: tuple[str, Delivery]) -> None:
            self._inputs = [Input(s, print, bytes, d) for s, d in inputs]

        def inputs(self) -> list[Input]:
            return self._inputs

    actors = [Reader((sj.FILLS, Delivery.DURABLE), (sj.PRICES, Delivery.LATEST)), Reader((sj.FILLS, Delivery.DURABLE))]
    assert ack_pending.durable_subjects(actors) == [sj.FILLS]
