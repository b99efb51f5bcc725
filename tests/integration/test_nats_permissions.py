"""infra/nats: a real nats-server started with bosun.conf (one user per service), the long-running
services as real processes each with its own user, what each user may and may not do, and the
3-node cluster enforcing the same users."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client
from nats.errors import NoRespondersError, TimeoutError as NatsTimeout
from nats.js import JetStreamContext, api
from nats.js.errors import APIError, NoStreamResponseError

from bosun.apps import control
from bosun.runtime.backlog import until_behind_at_most
from bosun.runtime.embedded import nats_server_binary
from bosun.runtime.nats_binding import durable_name
from bosun.runtime.provision import ProvisionError, provision, replicas_from_env
from bosun.runtime.snapshots import SnapshotStore
from proto import codec
from proto import events as ev
from proto import subjects as sj
from proto.streams import BUCKETS, STREAMS
from tests.builders import ALICE_SMA, fresh_price, publish, service_status, target, until_status, until_trading
from tests.natscluster import INFRA, USERS, Cluster, Errors, SecuredNats, connect, new_passwords, retried
from tests.natshelp import Collector, acked, stored_count
from tests.processes import ServiceProcess, server_env

REFUSED_WITHIN_S = 1.0  # a refused JetStream publish gets no ack: it times out

# signal needs a strategy to read bars (ALICE_SMA); one trade is far too few for it to ever signal.
SERVICES = ("signal", "risk", "execution", "portfolio", "alerts")  # ingest: played by the test, as its user
# Limits that make risk read every order event (ORDERS) and the positions' pnl (POSITIONS) too.
RISK_READING_ALL = '[risk]\nmax_open_orders = 10\nmax_daily_loss = "1000"\n'
# Execution stores a snapshot of what it rebuilds from ORDERS after every entry: its user may.
SNAPSHOT_EACH_ENTRY = "[services.execution]\nsnapshot_every = 1\n"


async def connected(stack: contextlib.AsyncExitStack, servers: SecuredNats | list[SecuredNats], user: str,
                    errors: Errors | None = None) -> Client:
    """`connect`, closed when `stack` closes."""
    nc = await connect(servers, user, errors)
    stack.push_async_callback(nc.close)
    return nc


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SecuredNats]:
    with SecuredNats(tmp_path / "nats", new_passwords()) as running:
        yield running


@pytest.fixture
async def admin(server: SecuredNats) -> AsyncIterator[Client]:
    nc = await connect(server, "admin")
    try:
        yield nc
    finally:
        await nc.close()


def trade(ts_event: int) -> ev.Trade:
    return ev.Trade(id=f"tr{ts_event}", ts_event=ts_event, venue="binance", symbol="BTCUSDT", price=Decimal("60000"),
                    qty=Decimal("2"), aggressor="buy")


@pytest.fixture
async def services(server: SecuredNats, admin: Client, tmp_path: Path,
                   fresh_database_url: str) -> AsyncIterator[dict[str, ServiceProcess]]:
    """Every long-running service, each connecting as its own user; they provision JetStream themselves."""
    config = tmp_path / "bosun.toml"
    config.write_text(ALICE_SMA + RISK_READING_ALL + SNAPSHOT_EACH_ENTRY)
    processes = {s: ServiceProcess(s, config, tmp_path, server_env(server.url(s), fresh_database_url))
                 for s in SERVICES}
    try:
        await asyncio.gather(*(p.start(admin) for p in processes.values()))
        yield processes
    finally:
        for p in processes.values():
            p.stop()


async def test_each_service_does_its_job_as_its_own_user_and_a_plain_publish_halts(
        server: SecuredNats, admin: Client, services: dict[str, ServiceProcess]):
    js = admin.jetstream()
    async with contextlib.AsyncExitStack() as connections:
        ingest = await connected(connections, server, "ingest")
        signal = await connected(connections, server, "signal")
        operator = await connected(connections, server, "operator")
        await publish(ingest, fresh_price(), timeout=REFUSED_WITHIN_S)
        await control.set_trading(admin, True)  # `bosun resume`, as admin
        for service in ("risk", "execution"):
            await until_trading(admin, service, True)

        async with Collector(admin, "target.approved.alice.>") as approved, \
                Collector(admin, "order.submit.alice.>") as submitted:
            proposed = target(1, "0.5")
            await publish(signal, proposed, timeout=REFUSED_WITHIN_S)
            await approved.wait(1, timeout=10)
            await submitted.wait(1, timeout=10)  # a market order, waiting for the venue's next trade
        await until_status(admin, "risk", "open_orders", {"alice": 1})
        async with Collector(admin, "order.accepted.alice.>") as accepted, \
                Collector(admin, "order.filled.alice.>") as filled, \
                Collector(admin, "position.changed.alice.>") as positions:
            await publish(ingest, trade(proposed.ts_event + 1), timeout=REFUSED_WITHIN_S)
            await accepted.wait(1, timeout=10)
            await filled.wait(1, timeout=10)
            [msg] = await positions.wait(1, timeout=10)  # portfolio read the fill and published
        assert codec.decode(msg.data, ev.PositionChanged).qty == Decimal("0.5")
        async with Collector(admin, "ledger.funding.alice.>") as paid:  # ingest's funding, portfolio's ledger
            await publish(ingest, ev.FundingRateSettled(id="funding-1", ts_event=proposed.ts_event + 2,
                                                        venue="binance", symbol="BTCUSDT", rate=Decimal("0.0001")),
                          timeout=REFUSED_WITHIN_S)
            [msg] = await paid.wait(1, timeout=10)
        assert codec.decode(msg.data, ev.FundingPaid).qty == Decimal("0.5")
        await until_status(admin, "risk", "open_orders", {"alice": 0})
        deadline = time.monotonic() + 10  # risk marks alice's equity from the position: the fill's fee
        while (await service_status(admin, "risk"))["limit_state"]["alice"]["max_daily_loss"]["equity"] == "10000":
            assert time.monotonic() < deadline, "risk did not read the position"
            await asyncio.sleep(0.02)
        assert await until_behind_at_most(ingest.jetstream(), "MARKET", 0, 10)  # ingest's replay pacing reads consumer state

        async with Collector(admin, sj.TRADING_STATE) as state:
            await operator.publish(sj.TRADING_ENABLED, b"false")  # what `nats pub` does
            [msg] = await state.wait(1, timeout=10)
        assert codec.decode(msg.data, ev.TradingStateChanged).enabled is False
        await until_trading(admin, "execution", False)
        states = await stored_count(js, "RISK", sj.TRADING_STATE)
        await acked(js, "RISK", durable_name("alerts", sj.TRADING_STATE), states)  # alerts read them all

        await control.set_trading(operator, True)  # `bosun resume` works as operator too
        await until_trading(admin, "risk", True)
        status = await control.gather(admin)  # `bosun status`, as admin
        assert status["trading_enabled"] is True and status["execution"]["fills"] == 1
        orders = await stored_count(js, "ORDERS", sj.ORDERS)
        deadline = time.monotonic() + 10  # execution's snapshots, written in the background once a second at most
        while (newest := await SnapshotStore(js).load("ORDERS")) is None or newest.seq < orders:
            assert time.monotonic() < deadline, f"execution stored no snapshot of ORDERS up to {orders}: {newest}"
            await asyncio.sleep(0.1)
    for p in services.values():
        assert "permissions violation" not in p.log_text().lower(), f"{p.service} was refused something it needs"


async def test_signal_cannot_publish_fills(server: SecuredNats, admin: Client):
    await provision(admin.jetstream())
    errors = Errors()
    signal = await connect(server, "signal", errors)
    try:
        fill = ev.OrderFilled(id="x.fill", ts_event=time.time_ns(), client="x", venue="y", symbol="z",
                              client_order_id="o1", side="buy", qty=Decimal("1"), price=Decimal("1"), fee=Decimal("0"))
        assert sj.subject_for(fill) == "order.filled.x.y.z"
        with pytest.raises(NatsTimeout):
            await publish(signal, fill, timeout=REFUSED_WITHIN_S)
        await errors.refused("order.filled.x.y.z")
        # its own subject still works: the connection survives
        await publish(signal, target(2, "1"), timeout=REFUSED_WITHIN_S)
    finally:
        await signal.close()
    assert await stored_count(admin.jetstream(), "ORDERS", "order.>") == 0


async def test_ingest_cannot_touch_the_kill_switch(server: SecuredNats, admin: Client):
    await provision(admin.jetstream())
    await control.set_trading(admin, False)
    errors = Errors()
    ingest = await connect(server, "ingest", errors)
    try:
        kv = await ingest.jetstream(timeout=REFUSED_WITHIN_S).key_value(sj.CONTROL_BUCKET)  # `bosun resume`'s way
        with pytest.raises(NatsTimeout):
            await kv.put(sj.TRADING_ENABLED_KEY, codec.encode_trading_enabled(True))
        await errors.refused(sj.TRADING_ENABLED)
        await ingest.publish(sj.TRADING_ENABLED, b"true")  # nor with a plain publish
        await errors.refused(sj.TRADING_ENABLED, times=2)
    finally:
        await ingest.close()
    kv = await admin.jetstream().key_value(sj.CONTROL_BUCKET)
    entry = await kv.get(sj.TRADING_ENABLED_KEY)
    assert (codec.decode_trading_enabled(entry.value), entry.revision) == (False, 1)


async def test_a_wrong_password_or_no_user_is_refused(server: SecuredNats):
    for url in (server.url("risk", "wrong"), f"nats://127.0.0.1:{server.port}"):
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            await nats.connect(url, allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=2,
                               error_cb=Errors().on_error)


def test_the_configs_declare_every_stream_and_are_valid(tmp_path: Path):
    users = (INFRA / "users.conf").read_text()
    for name in [s.name for s in STREAMS] + [f"KV_{b.name}" for b in BUCKETS]:
        assert f'"$JS.API.STREAM.CREATE.{name}"' in users, f"users.conf does not let services create {name}"
    env = {**os.environ, **{f"BOSUN_NATS_{user.upper()}_PASS": "p-test" for user in USERS},
           **{f"BOSUN_NATS_STORE_DIR{suffix}": str(tmp_path) for suffix in ("", "_1", "_2", "_3")}}
    confs = [INFRA / "bosun.conf", *sorted((INFRA / "cluster").glob("node-*.conf"))]
    assert len(confs) == 4
    for conf in confs:
        done = subprocess.run([str(nats_server_binary()), "-c", str(conf), "-t"], env=env, capture_output=True,
                              text=True, timeout=10)
        assert done.returncode == 0, f"{conf}: {done.stderr or done.stdout}"


async def test_the_three_node_cluster_replicates_and_every_node_enforces_the_users(tmp_path: Path):
    with Cluster(tmp_path) as cluster:
        nodes = cluster.nodes
        errors = Errors()
        async with contextlib.AsyncExitStack() as connections:
            admin = await connected(connections, nodes, "admin")
            ingest = await connected(connections, nodes[2], "ingest")
            signal = await connected(connections, nodes[1], "signal", errors)
            info = await until_created(admin.jetstream(), "MARKET", ["md.>"], replicas=3)
            assert info.config.num_replicas == 3 and len(info.cluster.replicas or []) == 2
            # ingest, on node 3: the new stream's interest may take a moment to reach that node
            ack = await retried(lambda: ingest.jetstream().publish("md.trade.binance.BTCUSDT", b"x"),
                                NoStreamResponseError, "a stream to answer ingest's publish on node 3")
            assert ack.stream == "MARKET"
            with pytest.raises(NatsTimeout):
                await signal.jetstream().publish("md.trade.binance.BTCUSDT", b"x", timeout=REFUSED_WITHIN_S)
            await errors.refused("md.trade.binance.BTCUSDT")  # refused on node 2 as well


async def test_bosun_replicas_3_gives_every_stream_and_bucket_three_copies_on_the_cluster(tmp_path: Path):
    with Cluster(tmp_path) as cluster:
        nodes = cluster.nodes
        async with contextlib.AsyncExitStack() as connections:
            js = (await connected(connections, nodes, "risk")).jetstream()  # a service provisions, as at its start
            replicas = replicas_from_env({"BOSUN_REPLICAS": "3"})
            await retried(lambda: provision(js, replicas), (ProvisionError, APIError, NatsTimeout, NoRespondersError),
                          "provisioning once the cluster has a JetStream meta leader")
            for name in [s.name for s in STREAMS] + [f"KV_{b.name}" for b in BUCKETS]:
                info = await js.stream_info(name)
                assert info.config.num_replicas == 3 and len(info.cluster.replicas or []) == 2, name
            await provision(js, replicas)  # the same count again: nothing to change
            with pytest.raises(ProvisionError, match=r"stream MARKET: replicas is 3 on the server, expected 1"):
                await provision(js, 1)


async def until_created(js: JetStreamContext, stream: str, subjects: list[str], replicas: int) -> api.StreamInfo:
    """Create a replicated stream once the cluster has elected its JetStream meta leader."""
    return await retried(lambda: js.add_stream(name=stream, subjects=subjects, num_replicas=replicas),
                         (APIError, NatsTimeout, NoRespondersError), f"a {replicas}-replica stream {stream}")
