"""How many messages each durable input holds delivered but unacked, as JetStream counts them
(`bosun_consumer_ack_pending_messages`): what a message's metadata does not carry, so it is
asked of the server every few seconds, beside the binding rather than on its hot path."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from nats.errors import NoRespondersError, TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.errors import APIError

from bosun.runtime import telemetry
from bosun.runtime.actor import Actor, Delivery
from bosun.runtime.nats_binding import durable_name
from proto.streams import stream_for

log = logging.getLogger(__name__)

EVERY_S = 5.0
TIMEOUT_S = 2.0  # a stream electing a leader answers nothing: asked again next time


def durable_subjects(actors: Iterable[Actor]) -> list[str]:
    """The filters of the actors' durable inputs, each once (one consumer however many read it)."""
    return sorted({inp.subject for actor in actors for inp in actor.inputs() if inp.delivery is Delivery.DURABLE})


async def export(js: JetStreamContext, service: str, subjects: list[str], every_s: float = EVERY_S) -> None:
    """Set the gauge for each of `subjects` every `every_s` until cancelled."""
    consumers = [(subject, spec.name, durable_name(service, subject))
                 for subject in subjects if (spec := stream_for(subject)) is not None]
    gauges = {subject: telemetry.CONSUMER_ACK_PENDING.labels(service, subject) for subject, _, _ in consumers}
    while True:
        for subject, stream, name in consumers:
            try:
                info = await js.consumer_info(stream, name, timeout=TIMEOUT_S)
            except (NatsTimeout, NoRespondersError, APIError) as exc:  # APIError: not created yet, or no leader
                log.debug("%s: ack pending of %s not read: %r", service, name, exc)
                continue
            except Exception:  # a gauge is not worth the service: say so once and stop
                log.exception("%s: ack pending metrics failed; the gauge stops here", service)
                return
            gauges[subject].set(info.num_ack_pending or 0)
        await asyncio.sleep(every_s)
