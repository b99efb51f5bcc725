"""`bosun run <service>`: the composition root of each service process. The one place
that knows which actor, which edges (PostgreSQL, webhooks, websockets) and which start
rules each service has."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import time
from pathlib import Path

import uvloop

from bosun.apps import config as config_mod
from bosun.apps.config import Config
from bosun.apps.status_metrics import exporter
from bosun.runtime.backlog import until_behind_at_most
from bosun.runtime.config import ConfigError
from bosun.runtime.provision import replicas_from_env
from bosun.runtime.service import Companion, run_service
from bosun.runtime.telemetry import setup_logging, setup_tracing
from bosun.runtime.urls import require_urls
from proto import subjects as sj

log = logging.getLogger("bosun.run")

ALERT_SUMMARY_EVERY_S = 10.0
BREAKER_TICK_S = 0.05  # how often risk's breakers look for a price or an answer that stopped coming
BATCH = 500  # market events per publish round at most: what has arrived, one price put per symbol
# A replay at full speed runs at most this many market events ahead of the slowest service:
# a bound on what it stores unread, and well inside what the shadow venue looks back on
# (ShadowAdapter's max_recent) when an order reaches it after the bars it was decided on.
REPLAY_LEAD = 2_000
# How far behind the platform is costs a JetStream API request: asked once this many events have
# gone out, not after every batch (a paced replay publishes one event per batch), so the lead is
# at most REPLAY_LEAD + REPLAY_CHECK_EVERY + BATCH.
REPLAY_CHECK_EVERY = 500
REPLAY_STALL_S = 30.0
# Fill ids of the newest stored fills a restarted portfolio remembers: a redelivery comes from the
# durable consumer's unacked tail, at most the binding's max_in_flight (1,024) fills.
RECENT_FILL_IDS = 10_000
# Execution's snapshots of what it rebuilds from ORDERS ([services.execution] snapshot_every) are
# at most this often: a burst of order events costs one snapshot a second, not one per round.
SNAPSHOT_MIN_INTERVAL_S = 1.0
# An installed package carries no infra/postgres (the Docker image copies it and names it here).
MIGRATIONS_DIR_ENV = "BOSUN_MIGRATIONS_DIR"


def _metrics(cfg: Config, service: str) -> dict[str, object]:
    """run_service's metrics arguments for `service`: where to serve them, and its state gauges."""
    own = cfg.service(service)
    return {"metrics_port": own.metrics_port, "metrics_addr": own.metrics_addr,
            "export_status": exporter(service, cfg)}


async def serve_signal(cfg: Config, nats_url: str, _database_url: str | None) -> int:
    from services.signal.actor import SignalActor

    await run_service("signal", lambda clock, out: SignalActor(clock, out, cfg.signal_config()), nats_url=nats_url,
                      **_metrics(cfg, "signal"))
    return 0


async def serve_risk(cfg: Config, nats_url: str, _database_url: str | None) -> int:
    from services.risk.actor import RiskActor

    async def breaker_clock(binding, actor: RiskActor) -> None:
        if not actor.ticks:
            await asyncio.Event().wait()  # nothing to tick: a source that never ends, as the service does not
        while True:
            await asyncio.sleep(BREAKER_TICK_S)
            await binding.feed(actor.on_tick, actor.clock.now_ns())

    await run_service("risk", lambda clock, out: RiskActor(clock, out, cfg.risk_config(), persist_trips=True),
                      nats_url=nats_url,
                      **_metrics(cfg, "risk"), halt_on_start=True, source=breaker_clock)
    return 0


async def serve_execution(cfg: Config, nats_url: str, database_url: str | None) -> int:
    from bosun.runtime import replicas as replicated
    from bosun.runtime import snapshots
    from bosun.runtime.clock import LiveClock
    from services.execution.actor import ExecutionActor
    from services.execution.records import Snapshot
    from services.execution.store import ExecutionStore
    from services.execution.venues.shadow_adapter import ShadowAdapter

    config = cfg.execution_config(guarded=True)
    if config.live.capped:
        log.warning("%s", config.live.banner())
    live = any(v.kind == "live" for venues in config.venues.values() for v in venues.values())
    if live and not database_url:
        raise ConfigError("execution with a live venue needs PostgreSQL for its intents: set BOSUN_DATABASE_URL "
                          "or start `bosun up`")
    # What the actors rebuild from ORDERS comes from its newest snapshot plus the log after it.
    newest = await _newest_snapshot(nats_url, "ORDERS")
    adapters = [Companion(lambda clock, out: _restored(ShadowAdapter(clock, out, config), newest))]
    store, snapshot, edge = None, Snapshot({}, {}), None
    if live:
        from services.execution.venues.ccxt_edge import CcxtEdge  # ccxt: the `live` extra, loaded only for live venues
        from services.execution.venues.live import LiveAdapter
        from services.execution.venues.user_stream import follow, followers

        # Intents are recorded where money moves: with a live venue. Paper and shadow trading keep
        # their state in the order log alone, so they run on while PostgreSQL is down and pay no
        # commit per approval (bench/RESULTS.md).
        store = await ExecutionStore.connect(database_url)
        migrations = os.environ.get(MIGRATIONS_DIR_ENV)
        await (store.migrate(Path(migrations)) if migrations else store.migrate())
        snapshot = await store.snapshot()
        log.info("execution: restored the levels of %d positions from PostgreSQL", len(snapshot.protection))
        edge = CcxtEdge(config)

        async def live_venues(binding, actor: LiveAdapter) -> None:
            # What each account holds, once the log's unanswered commands are carried out (on_start),
            # then the fills as they come: the user stream, polling while it is down.
            await binding.feed(actor.on_venue_found, await edge.venue_state(snapshot.last_fills))
            await follow(followers(edge, functools.partial(binding.feed, actor.on_fills_found)))

        adapters.append(Companion(lambda clock, out: _restored(LiveAdapter(clock, out, config), newest),
                                  effects=edge.carry_out, source=live_venues))

    def replicas() -> list:
        """The actors again, never started, fed only ORDERS: what a full replay would build."""
        made = [ExecutionActor(LiveClock(), replicated.REFUSING, config, durable=True),
                ShadowAdapter(LiveClock(), replicated.REFUSING, config)]
        if live:
            made.append(LiveAdapter(LiveClock(), replicated.REFUSING, config))
        return made

    async def snapshotting(binding, _actor) -> None:
        kept = replicated.Replicas("ORDERS", sj.ORDERS, replicas)
        kept.restore(newest)
        try:
            await snapshots.keep(binding.js, snapshots.SnapshotStore(binding.js, replicas_from_env()), kept,
                                 sj.ORDERS, cfg.service("execution").snapshot_every, SNAPSHOT_MIN_INTERVAL_S)
        except Exception:  # trading goes on; the next start replays more
            log.exception("execution: snapshots of ORDERS stopped")
            await asyncio.Event().wait()

    try:
        await run_service("execution", lambda clock, out: _restored(ExecutionActor(
            clock, out, config, durable=store is not None, protection=snapshot.protection), newest),
            nats_url=nats_url, effects=None if store is None else store.record, halt_on_start=True,
            companions=adapters, source=snapshotting, **_metrics(cfg, "execution"))
    finally:
        if edge is not None:
            await edge.close()
        if store is not None:
            await store.close()
    return 0


def _restored(actor, newest):
    from bosun.runtime.replicas import restore

    restore(actor, newest)
    return actor


async def _newest_snapshot(nats_url: str, stream: str):
    """The newest usable snapshot of `stream`, read on a connection of its own before the service's."""
    import nats

    from bosun.runtime import snapshots, urls
    from bosun.runtime.service import inbox_prefix

    t0 = time.perf_counter()
    nc = await nats.connect(urls.nats_servers(nats_url), name="bosun-execution-snapshot",
                            inbox_prefix=inbox_prefix("execution"), connect_timeout=5)
    try:
        newest = await snapshots.load(snapshots.SnapshotStore(nc.jetstream()), stream)
    finally:
        await nc.close()
    if newest is not None:
        log.info("execution: snapshot of %s at sequence %d read in %.3f s", stream, newest.seq,
                 time.perf_counter() - t0)
    return newest


async def serve_portfolio(cfg: Config, nats_url: str, database_url: str | None) -> int:
    from services.portfolio.actor import PortfolioActor
    from services.portfolio.store import PortfolioStore

    if not database_url:
        raise ConfigError("portfolio needs PostgreSQL: set BOSUN_DATABASE_URL or start `bosun up`")
    store = await PortfolioStore.connect(database_url)
    try:
        migrations = os.environ.get(MIGRATIONS_DIR_ENV)
        await (store.migrate(Path(migrations)) if migrations else store.migrate())
        t0 = time.perf_counter()
        restored = await store.restored(RECENT_FILL_IDS)

        async def snapshot_clock(binding, actor: PortfolioActor) -> None:
            while True:
                await asyncio.sleep(cfg.portfolio.snapshot_interval_s)
                await binding.feed(actor.on_snapshot_due, actor.clock.now_ns())

        def build(clock, out) -> PortfolioActor:
            actor = PortfolioActor(clock, out, cfg.portfolio_config(), restored=restored, execution_quality=True)
            log.info("portfolio: restored from PostgreSQL in %.3f s: %s snapshot, then %d fills and %d funding "
                     "payments", time.perf_counter() - t0, "no" if restored.snapshot is None else "a",
                     len(restored.fills), len(restored.funding))
            return actor

        await run_service("portfolio", build, nats_url=nats_url, effects=store.carry_out, source=snapshot_clock,
                          **_metrics(cfg, "portfolio"))
    finally:
        await store.close()
    return 0


async def serve_alerts(cfg: Config, nats_url: str, _database_url: str | None) -> int:
    from services.alerts.actor import AlertsActor
    from services.alerts.webhooks import from_config

    notifier = from_config(cfg.alerts)

    async def send(effects) -> None:
        for e in effects:
            notifier.notify(e.alert)  # queued (bounded), delivered by notifier.run()

    async def summary_clock(binding, actor: AlertsActor) -> None:
        # The actor has no timers: a burst followed by silence still gets its "N suppressed" summary.
        while True:
            await asyncio.sleep(ALERT_SUMMARY_EVERY_S)
            await binding.feed(actor.on_summary_due, actor.clock.now_ns())

    sending = asyncio.create_task(notifier.run())
    try:
        await run_service("alerts", lambda clock, out: AlertsActor(clock, out, cfg.alerts), nats_url=nats_url,
                          effects=send, source=summary_clock, **_metrics(cfg, "alerts"))
    finally:
        await notifier.aclose()  # delivers what is queued (bounded) while the sender still runs
        sending.cancel()
        await asyncio.gather(sending, return_exceptions=True)
    return 0


async def serve_ingest(cfg: Config, nats_url: str, _database_url: str | None) -> int:
    from bosun.apps.control import EXIT_STREAM_UNAVAILABLE
    from bosun.apps.market_state import stored_market
    from services.ingest.actor import MarketDataActor
    from services.ingest.binance_ws import StreamUnavailable
    from services.ingest.source import batches, market_events

    replaying = bool(cfg.ingest.replay)

    async def pump(binding, actor: MarketDataActor) -> None:
        # A restart resumes after what the platform has: no bar stored twice, no price stepping back.
        stored = await stored_market(binding.js)
        actor.resume(stored)
        for kind, newest in (("bar", stored.bars), ("trade", stored.trades)):
            for (venue, symbol), event in sorted(newest.items()):
                log.info("ingest: %s.%s resumes after its %s of %d ns", venue, symbol, kind, event.ts_event)
        n = checked = 0
        async for batch in batches(market_events(cfg.ingest, stored), BATCH):
            await binding.feed(actor.on_events, batch)
            n += len(batch)
            if not replaying or n - checked < REPLAY_CHECK_EVERY:
                continue
            checked = n
            if not await until_behind_at_most(binding.js, "MARKET", REPLAY_LEAD, REPLAY_STALL_S):
                log.warning("ingest: the platform has not caught up with the replay in %ss; going on", REPLAY_STALL_S)
        if replaying and n == 0 and (stored.bars or stored.trades):
            log.warning("ingest: the platform already has every event of the replay files (MARKET holds newer "
                        "ones); nothing published. To replay them again, start on an empty store (a fresh "
                        "`bosun up --state-dir`).")
        elif replaying:
            log.info("ingest: replay finished after %d new events", n)

    try:
        await run_service("ingest", MarketDataActor, nats_url=nats_url, source=pump,
                          **_metrics(cfg, "ingest"))
    except StreamUnavailable as exc:
        log.error("ingest: %s", exc)
        return EXIT_STREAM_UNAVAILABLE
    return 0


SERVE = {
    "ingest": serve_ingest,
    "signal": serve_signal,
    "risk": serve_risk,
    "execution": serve_execution,
    "portfolio": serve_portfolio,
    "alerts": serve_alerts,
}


def main(args) -> int:
    cfg = config_mod.load(args.config)
    state_dir = args.state_dir or Path(cfg.state_dir)
    nats_url, database_url = require_urls(state_dir, args.service)
    setup_logging(args.service)
    setup_tracing(args.service, os.environ.get("OTEL_TRACES_EXPORTER"))
    with contextlib.suppress(KeyboardInterrupt):
        return uvloop.run(SERVE[args.service](cfg, nats_url, database_url))
    return 130
