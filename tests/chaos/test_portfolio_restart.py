"""kill -9 of the portfolio process while fills stream in, then a restart from its ledger snapshot.

`bosun run portfolio` on its own embedded NATS and a fresh PostgreSQL database, taking a snapshot
every 0.2 s. The test publishes thousands of fills for two clients on two venues and funding for a
perpetual, kills the process when part of them is booked, publishes the rest while it is down,
restarts it, and checks: every fill booked once; each funding time booked
once per position; positions in PostgreSQL and in the restarted service equal the test's own
average-cost recomputation from the fills; and the restart began from a snapshot.
Once on a single embedded server, once on the 3-node cluster with every stream R3 and each party
connecting as its own user (execution's fills, ingest's funding), as tests/chaos/test_failover.py runs.
(tests/chaos/test_faults.py kills portfolio inside the whole platform at a fill every second or
two; this one kills it under a stream of fills.)"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal

import asyncpg
import nats
import pytest
from nats.aio.client import Client
from nats.errors import NoRespondersError, TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.errors import APIError

from bosun.runtime.embedded import EmbeddedNats
from bosun.runtime.provision import ProvisionError, provision
from proto import codec
from proto import events as ev
from proto import subjects as sj
from tests.builders import service_status
from tests.natscluster import Cluster, connect, retried
from tests.natshelp import stored_count
from tests.processes import ServiceProcess, kill_9, server_env

pytestmark = [pytest.mark.integration, pytest.mark.timeout(400)]

CONFIG = """
strategies = []

[portfolio]
snapshot_interval_s = 0.2

[[clients]]
id = "alice"

[[clients]]
id = "bob"
"""
FILLS = 6_000
KILL_AT = 1_500  # booked fills when the process is killed
FUNDING_EVERY = 500  # fills between two funding times of the perpetual
MARKETS = [("binance", "BTCUSDT"), ("binance_usdm", "BTCUSDT"), ("binance", "ETHUSDT")]
DEADLINE_S = 150.0
# The killed process's unacked fills come again at the restart, not after the 60 s ack wait; booking the
# ~4,500 published while it was down takes most of this (3.4 s quiet, 11.8 s with a suite running beside).
RECOVERY_S = 30.0
POLL_S = 0.05  # polling a table with a deadline, never a sleep as synchronisation
T0 = 1_700_000_000_000_000_000


def fills(n: int) -> list[ev.OrderFilled]:
    rng = random.Random(12)
    out = []
    for i in range(n):
        venue, symbol = rng.choice(MARKETS)
        price = Decimal(rng.randint(59_000_00, 61_000_00)) / 100 if symbol == "BTCUSDT" else Decimal(
            rng.randint(2_900_00, 3_100_00)) / 100
        qty = Decimal(rng.randint(1, 300)) / 1000
        out.append(ev.OrderFilled(id=f"f-{i}", ts_event=T0 + i * 1_000_000, client_order_id=f"o-{i}",
                                  client=rng.choice(["alice", "bob"]), venue=venue, symbol=symbol,
                                  side=rng.choice(["buy", "sell"]), qty=qty, price=price,
                                  fee=(qty * price * Decimal("0.0004")).quantize(Decimal("1e-8"))))
    return out


def funding(k: int) -> ev.FundingRateSettled:
    return ev.FundingRateSettled(id=f"funding-{k}", ts_event=T0 + k * 8 * 3600 * 10**9, venue="binance_usdm",
                                 symbol="BTCUSDT", rate=Decimal("0.0001"), mark_price=Decimal("60000.5"))


def recompute(stream: list[ev.OrderFilled]) -> dict[tuple[str, str, str], tuple[Decimal, Decimal, Decimal]]:
    """The test's own average-cost book: (qty, realized pnl before fees, fees) per position."""
    book: dict[tuple[str, str, str], list[Decimal]] = {}
    for f in stream:
        qty, cost, realized, fees = book.setdefault((f.client, f.venue, f.symbol), [Decimal(0)] * 4)
        signed = f.qty if f.side == "buy" else -f.qty
        fees += f.fee
        if qty == 0 or (qty > 0) == (signed > 0):
            qty, cost = qty + signed, cost + f.qty * f.price
        else:
            closed = min(abs(qty), f.qty)
            closed_cost = cost * closed / abs(qty)
            realized += (closed * f.price - closed_cost) * (1 if qty > 0 else -1)
            cost -= closed_cost
            qty += signed
            if f.qty > closed:
                cost = (f.qty - closed) * f.price
        book[(f.client, f.venue, f.symbol)] = [qty, cost, realized, fees]
    return {k: (q, r, fee) for k, (q, _, r, fee) in book.items()}


async def booked(db: asyncpg.Connection) -> int:
    return await db.fetchval("SELECT count(*) FROM fills")


async def until_booked(db: asyncpg.Connection, n: int, service: ServiceProcess, within_s: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + within_s
    while await booked(db) < n:
        assert time.monotonic() < deadline, f"{await booked(db)} of {n} fills booked:\n{service.log_text()}"
        await asyncio.sleep(POLL_S)


@dataclass
class Bus:
    kind: str
    nc: Client  # reads everything, asks portfolio for its status
    env: dict[str, str]  # portfolio's
    fills: JetStreamContext  # who may publish fills
    funding: JetStreamContext  # who may publish funding


@pytest.fixture(params=["single", "r3"])
async def bus(request, searchable_tmp_path, fresh_database_url) -> AsyncIterator[Bus]:
    if request.param == "single":
        with EmbeddedNats(searchable_tmp_path / "nats") as server:
            nc = await nats.connect(server.url)
            js = nc.jetstream(publish_async_max_pending=4000)
            try:
                yield Bus("single server", nc, server_env(server.url, fresh_database_url), js, js)
            finally:
                await nc.close()
        return
    with Cluster(searchable_tmp_path / "cluster") as cluster:
        clients = [await connect(cluster.nodes, user, reconnect=True) for user in ("admin", "execution", "ingest")]
        try:
            admin, execution, ingest = clients
            # Provisioned once the cluster has a JetStream meta leader; portfolio checks it at its start.
            await retried(lambda: provision(admin.jetstream(), 3), (NatsTimeout, NoRespondersError, APIError,
                                                                     ProvisionError), "provisioning on the cluster")
            yield Bus("3-node cluster, R3", admin,
                      server_env(cluster.urls("portfolio"), fresh_database_url) | {"BOSUN_REPLICAS": "3"},
                      execution.jetstream(publish_async_max_pending=4000),
                      ingest.jetstream(publish_async_max_pending=4000))
        finally:
            for c in clients:
                await c.close()


async def test_kill_9_of_portfolio_while_fills_stream_in_loses_and_doubles_nothing(bus, searchable_tmp_path,
                                                                                     fresh_database_url):
    stream = fills(FILLS)
    config = searchable_tmp_path / "bosun.toml"
    config.write_text(CONFIG)
    nc, js = bus.nc, bus.nc.jetstream()
    db = await asyncpg.connect(fresh_database_url)
    service = ServiceProcess("portfolio", config, searchable_tmp_path, bus.env)
    try:
        await service.start(nc)

        async def publish(event: ev.Event) -> None:
            by = bus.funding if isinstance(event, ev.FundingRateSettled) else bus.fills
            await by.publish_async(sj.subject_for(event), codec.encode(event),
                                   headers={"Nats-Msg-Id": ev.msg_id(event)})

        async def published() -> None:
            await bus.fills.publish_async_completed()
            await bus.funding.publish_async_completed()

        for i, f in enumerate(stream[:KILL_AT * 2]):
            await publish(f)
            if i % FUNDING_EVERY == FUNDING_EVERY - 1:
                await publish(funding(i // FUNDING_EVERY))
        await published()
        await until_booked(db, KILL_AT, service)
        kill_9(service.proc.pid)
        killed_at = await booked(db)
        assert killed_at < FILLS, "killed too late: every fill was booked already"
        for i, f in enumerate(stream[KILL_AT * 2:], KILL_AT * 2):  # published while portfolio is down
            await publish(f)
            if i % FUNDING_EVERY == FUNDING_EVERY - 1:
                await publish(funding(i // FUNDING_EVERY))
                # Once more, once stored (on the cluster a duplicate of one still in flight got no
                # answer here, and publish_async waits for one without a bound): booked once.
                await published()
                await publish(funding(i // FUNDING_EVERY))
        await published()
        assert await db.fetchval("SELECT count(*) FROM ledger_snapshots") > 0, "no snapshot before the kill"

        restarted = time.monotonic()
        await service.start(nc)
        await until_booked(db, FILLS, service, RECOVERY_S)
        recovery_s = time.monotonic() - restarted
        assert "restored from PostgreSQL" in service.log_text() and " a snapshot, then " in service.log_text()

        # Every fill once. Those the killed process held unacked came again first (the consumer rewound
        # to its ack floor); the book follows the order handled, which PostgreSQL keeps (seq).
        assert "previous process left unacked" in service.log_text()
        handled = [(r["venue"], r["fill_id"]) for r in await db.fetch("SELECT venue, fill_id FROM fills "
                                                                      "ORDER BY seq")]
        published = {(f.venue, f.id): f for f in stream}
        assert len(handled) == len(set(handled)) == FILLS and set(handled) == set(published)
        # Each funding time once per position it was charged on, and the positions' totals agree.
        payments = await db.fetch("SELECT client, venue, symbol, funding_ts, amount FROM funding_payments")
        assert payments and len({(r["client"], r["venue"], r["symbol"], r["funding_ts"]) for r in payments}) \
            == len(payments)
        paid: dict[tuple[str, str, str], Decimal] = {}
        for r in payments:
            key = (r["client"], r["venue"], r["symbol"])
            paid[key] = paid.get(key, Decimal(0)) + r["amount"]

        expected = recompute([published[k] for k in handled])  # the test's copies of the fills
        stored = {(r["client"], r["venue"], r["symbol"]): r for r in await db.fetch("SELECT * FROM positions")}
        assert set(stored) == set(expected)
        for key, (qty, realized, fees) in expected.items():
            row, funding_paid = stored[key], paid.get(key, Decimal(0))
            assert (row["qty"], row["fees"], row["funding"]) == (qty, fees, funding_paid), key
            assert abs(row["realized_pnl"] - (realized - fees - funding_paid)) < Decimal("1e-9"), key

        # The restarted service holds the same book.
        deadline = time.monotonic() + DEADLINE_S
        while True:
            status = await service_status(nc, "portfolio")
            held = {(p["client"], p["venue"], p["symbol"]): (Decimal(p["qty"]), Decimal(p["fees"]),
                                                              Decimal(p["funding"]))
                    for p in status["positions"]}
            want = {k: (q, fee, paid.get(k, Decimal(0))) for k, (q, _, fee) in expected.items()}
            if held == want:
                break
            assert time.monotonic() < deadline, f"portfolio reports {held}, the fills say {want}"
            await asyncio.sleep(POLL_S)
        # Each client's equity snapshots, on NATS as in PostgreSQL: stored before they are published, so
        # one the kill cut off after its commit and one being taken now are in PostgreSQL alone.
        for client in ("alice", "bob"):
            on_nats = await stored_count(js, "LEDGER", f"ledger.equity.{client}")
            stored_n = await db.fetchval("SELECT count(*) FROM equity_snapshots WHERE client = $1", client)
            assert 0 < on_nats <= stored_n <= on_nats + 2, (client, on_nats, stored_n)
        print(f"\n{bus.kind}: portfolio kill -9 at {killed_at} of {FILLS} fills booked: all booked once "
              f"{recovery_s:.2f} s after the restart")
    finally:
        service.stop()
        await db.close()
