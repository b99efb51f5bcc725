"""One service process: connect, provision, announce (nats.micro), export metrics, run the
actor on its binding, and stop cleanly on SIGTERM/SIGINT or cancellation.

The caller owns the event loop (`uvloop.run(run_service(...))`); nothing global is installed
except the signal handlers, which are removed on the way out."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NamedTuple

import msgspec
import nats
from nats.micro import add_service
from nats.micro.request import Request
from prometheus_client import start_http_server

from bosun.runtime import ack_pending, telemetry, urls
from bosun.runtime.actor import Actor, Outbox
from bosun.runtime.clock import Clock, LiveClock
from bosun.runtime.nats_binding import Effects, NatsBinding
from bosun.runtime.provision import provision

log = logging.getLogger(__name__)

VERSION = "0.1.0"
STATUS_METRICS_EVERY_S = 1.0  # how fresh the state gauges are; a Prometheus scrape is rarer
_json = msgspec.json.Encoder(enc_hook=str)  # Decimal and other scalars as strings


def inbox_prefix(service: str) -> str:
    """The service's own inbox space (replies, push deliveries, publish acks), so that its NATS
    user can be allowed `_INBOX_<service>.>` and no other inbox (infra/nats/users.conf)."""
    return f"_INBOX_{service}"


Source = Callable[[NatsBinding, Actor], Awaitable[None]]


class Companion(NamedTuple):
    """Another actor of the same process, with the edges of its own (execution's venue adapters)."""

    build: Callable[[Clock, Outbox], Actor]
    effects: Effects | None = None
    source: Source | None = None


async def run_service(name: str, build: Callable[[Clock, Outbox], Actor], *, nats_url: str,
                      effects: Effects | None = None, metrics_port: int = 0, metrics_addr: str = "127.0.0.1",
                      export_status: Callable[[Any], None] | None = None, halt_on_start: bool = False,
                      on_ready: Callable[[], Any] | None = None,
                      source: Source | None = None,
                      companions: Sequence[Companion] = ()) -> None:
    """Run service `name` until SIGTERM/SIGINT (returns) or cancellation (raises CancelledError).

    `effects` carries out what the actor asks of the edge (runtime.actor.Effect). `source`, for
    services fed from outside NATS (ingest's market data, alerts' summary clock), runs once the
    actor is ready and feeds it through `binding.feed`; when it returns, the service stops. The service answers
    `$SRV.PING` only once it is ready: every input subscribed and caught up. `companions` are
    more actors of the same process (execution's venue adapters): one with effects or a source
    of its own on a binding of its own on the same connection, the others on the main actor's
    binding; the service is ready when all of them are. Metrics are served on
    `metrics_addr:metrics_port` (loopback unless a deployment opens it to its scraper);
    `export_status`, when given, turns the actor's `status()` into gauges every second."""

    async def on_error(exc: Exception) -> None:
        log.error("%s: nats: %r", name, exc)

    async def on_disconnect() -> None:
        log.warning("%s: disconnected from NATS", name)

    reconnects = telemetry.RECONNECTS.labels(name)  # 0 from the start, not no series

    async def on_reconnect() -> None:
        reconnects.inc()
        log.info("%s: reconnected to NATS", name)

    nc = await nats.connect(urls.nats_servers(nats_url), name=f"bosun-{name}", inbox_prefix=inbox_prefix(name),
                            connect_timeout=5, allow_reconnect=True, max_reconnect_attempts=120,
                            reconnect_time_wait=1, error_cb=on_error, disconnected_cb=on_disconnect,
                            reconnected_cb=on_reconnect)
    stop = asyncio.Event()
    signals = _on_signals(stop.set)
    httpd = exporting = polling = None
    try:
        await provision(nc.jetstream())
        binding = NatsBinding(nc, name)
        actor = build(LiveClock(), binding.outbox)
        httpd, _ = start_http_server(metrics_port, addr=metrics_addr)
        log.info("%s: metrics on http://%s:%d/metrics", name, metrics_addr, httpd.server_port,
                 extra={"metrics_port": httpd.server_port})
        if export_status is not None:
            exporting = asyncio.create_task(_export_status(actor, export_status), name=f"{name}-status-metrics")
        if halt_on_start:
            await binding.put_trading_enabled(False)
            log.info("%s: trading_enabled set to false at start", name)

        # A companion without edges of its own shares the main binding: its turns, its rounds and
        # its subscriptions (execution and the shadow venue read the order log once, not twice).
        also = [c.build(LiveClock(), binding.outbox) for c in companions if c.effects is None and c.source is None]
        runs = [(binding, actor, effects, source, also)]
        for companion in companions:
            if companion.effects is not None or companion.source is not None:
                own = NatsBinding(nc, name)
                runs.append((own, companion.build(LiveClock(), own.outbox), companion.effects, companion.source, []))
        readies = [asyncio.Event() for _ in runs]
        ready = asyncio.Event()
        running = asyncio.ensure_future(asyncio.gather(*(b.run(a, e, r, more)
                                                         for (b, a, e, _, more), r in zip(runs, readies))))
        stopping = asyncio.create_task(stop.wait())
        readying = asyncio.create_task(_all_set(readies, ready))
        tasks = [running, stopping, readying]
        micro = None
        try:
            await asyncio.wait([running, readying, stopping], return_when=asyncio.FIRST_COMPLETED)
            if ready.is_set():
                micro = await _announce(nc, name, actor)
                log.info("%s: ready", name)
                if on_ready is not None:
                    on_ready()
                for b, a, _, feed, _ in runs:  # the main actor's source first: when it finishes, the service does
                    if feed is not None:
                        tasks.append(asyncio.create_task(feed(b, a), name=f"{name}-{a.name}-source"))
                durables = ack_pending.durable_subjects(x for _, a, _, _, more in runs for x in (a, *more))
                if durables:
                    polling = asyncio.create_task(ack_pending.export(nc.jetstream(), name, durables),
                                                  name=f"{name}-ack-pending")
                await asyncio.wait(tasks[:2] + tasks[3:], return_when=asyncio.FIRST_COMPLETED)
            for task in (running, *tasks[3:]):
                if task.done():
                    task.result()  # the binding or the source failed: raise it
            if stop.is_set():
                log.info("%s: stopping on signal", name)
            elif source is not None and tasks[3].done():
                log.info("%s: source finished", name)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if micro is not None:
                await micro.stop()
    finally:
        for task in (exporting, polling):
            if task is not None:
                task.cancel()
        for sig in signals:
            asyncio.get_running_loop().remove_signal_handler(sig)
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if nc.is_connected:
            await nc.drain()
        else:
            await nc.close()


async def _export_status(actor: Actor, export: Callable[[Any], None]) -> None:
    # In the loop, between handler calls: status() reads the actor's state while nothing changes it.
    while True:
        try:
            export(actor.status())
        except Exception:  # a gauge is not worth the service: say so once and stop exporting
            log.exception("status metrics failed; the state gauges stop here")
            return
        await asyncio.sleep(STATUS_METRICS_EVERY_S)


async def _all_set(events: list[asyncio.Event], then: asyncio.Event) -> None:
    for event in events:
        await event.wait()
    then.set()


async def _announce(nc, name: str, actor: Actor):
    """Register the nats.micro service (PING, INFO, STATS, `status` when the actor has one, and
    the actor's own endpoints)."""
    micro = await add_service(nc, name=f"bosun-{name}", version=VERSION, description=f"bosun {name} service")
    status = getattr(actor, "status", None)
    if callable(status):
        async def reply_status(request: Request) -> None:
            await request.respond(_json.encode(status()))

        await micro.add_endpoint(name="status", subject=urls.status_subject(name), handler=reply_status)
    for endpoint in actor.endpoints():
        await micro.add_endpoint(name=endpoint.name, subject=endpoint.subject, handler=_replying(endpoint.answer))
    return micro


def _replying(answer: Callable[[str], Any]) -> Callable[[Request], Awaitable[None]]:
    async def reply(request: Request) -> None:
        await request.respond(_json.encode(answer(request.subject)))

    return reply


def _on_signals(callback: Callable[[], None]) -> list[signal.Signals]:
    """SIGTERM/SIGINT call `callback` (only possible in the main thread)."""
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, callback)
            installed.append(sig)
        except (RuntimeError, ValueError):  # not the main thread
            pass
    return installed
