"""Failover: the services on the 3-node loopback cluster (infra/nats/cluster), every stream and
bucket R3 (BOSUN_REPLICAS=3), each service connecting as its own user to all three nodes, alice
trading sma 5/20 on a replay of real BTCUSDT minutes. A kill -9 of the node leading a stream,
mid-replay, then its restart on its store:
- the ORDERS stream's leader: no order submitted twice, every fill booked once (PostgreSQL equals
  the journal), positions agreeing, and trading going on; the stall is measured;
- the KV `control` bucket's leader: a `false` published while it fails over (a raw publish, as
  `nats pub` does, retried until the cluster stores it) halts risk and execution.

Each prints its figures; bench/RESULTS.md records them ("Failover on the 3-node cluster")."""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest
from nats.aio.client import Client
from nats.errors import NoRespondersError, TimeoutError as NatsTimeout
from nats.js.errors import APIError, NoStreamResponseError

from bosun.apps import config as config_mod, control
from bosun.apps.up import effective_config
from bosun.runtime.provision import ProvisionError, provision
from proto import codec
from proto import subjects as sj
from proto.streams import BUCKETS, STREAMS
from tests.builders import ALICE_SMA, until_trading
from tests.chaos.platform import RECOVERY_TIMEOUT_S, SPEED, assert_fills_booked_once, assert_order_ids_unique, \
    assert_services_agree_with_the_journal, until_services_answer
from tests.datafiles import BTC_1M, data_file, write_slice
from tests.natscluster import Cluster, connect, retried
from tests.processes import SERVICES, ServiceProcess, kill_9, server_env

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

REPLICAS = "3"
BARS = 5_000  # at SPEED, far more minutes than a test lasts: the replay never runs out under it
LEADER_TIMEOUT_S = 30.0  # a stream of a two-node majority elects a leader well within this
JS_TIMEOUT_S = 1.0  # a request to a stream with no leader is asked again soon
POLL_S = 0.02  # polling the cluster with a deadline, never a sleep as synchronisation
# While a stream has no leader, a JetStream request gets no answer or an error: asked again.
UNSETTLED = (NatsTimeout, NoRespondersError, NoStreamResponseError, APIError, ProvisionError)


@dataclass
class Trading:
    cluster: Cluster
    admin: Client
    database_url: str
    services: dict[str, ServiceProcess]


@pytest.fixture
async def trading(tmp_path: Path, fresh_database_url: str) -> AsyncIterator[Trading]:
    replay = write_slice(data_file(BTC_1M), tmp_path / "BTCUSDT_1m.csv", BARS)
    (tmp_path / "bosun.toml").write_text(ALICE_SMA)
    # What `bosun up --replay --speed` hands its children: paper mode, on shadow venues, old prices usable.
    paper = effective_config(argparse.Namespace(replay=[replay], speed=SPEED, dry_run=False),
                             config_mod.load(tmp_path / "bosun.toml"))
    config = tmp_path / "effective.json"
    config.write_bytes(msgspec.json.encode(paper))
    with Cluster(tmp_path / "cluster") as cluster:
        admin = await connect(cluster.nodes, "admin", reconnect=True)
        services = {s: ServiceProcess(s, config, tmp_path, server_env(cluster.urls(s), fresh_database_url)
                                      | {"BOSUN_REPLICAS": REPLICAS}) for s in SERVICES}
        try:
            # Provisioned once the cluster has a JetStream meta leader; each service checks it at its start.
            await retried(lambda: provision(admin.jetstream(), int(REPLICAS)), UNSETTLED, "provisioning on the cluster")
            await asyncio.gather(*(p.start(admin) for p in services.values() if p.service != "ingest"))
            await control.set_trading(admin, True)  # `bosun resume`: risk and execution start halted
            for service in ("risk", "execution"):
                await until_trading(admin, service, True)
            await services["ingest"].start(admin)  # the replay starts once everything trades
            yield Trading(cluster, admin, fresh_database_url, services)
        finally:
            for p in services.values():
                p.stop()
            await admin.close()


async def stream_state(js, stream: str) -> tuple[str, int]:
    """The stream's leader (a server name) and its last sequence, once some node answers."""
    info = await retried(lambda: js.stream_info(stream), UNSETTLED, f"{stream}'s info", LEADER_TIMEOUT_S)
    return info.cluster.leader, info.state.last_seq


async def until_stored(js, stream: str, subject: str, past: int, timeout_s: float = RECOVERY_TIMEOUT_S) -> float:
    """Until `stream` holds more than `past` messages on `subject`; when (time.monotonic())."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            info = await js.stream_info(stream, subjects_filter=subject)
            if sum((info.state.subjects or {}).values()) > past:
                return time.monotonic()
        except UNSETTLED:
            pass  # no leader yet
        assert time.monotonic() < deadline, f"{stream} stored nothing more on {subject} within {timeout_s}s"
        await asyncio.sleep(POLL_S)


async def stored_on(js, stream: str, subject: str) -> int:
    info = await retried(lambda: js.stream_info(stream, subjects_filter=subject), UNSETTLED,
                         f"{stream}'s info", LEADER_TIMEOUT_S)
    return sum((info.state.subjects or {}).values())


def report(fault: str, **seconds: float) -> None:
    print(f"\nfailover: {fault}: " + ", ".join(f"{what.replace('_', ' ')} {s:.2f} s" for what, s in seconds.items()))


async def test_kill_9_of_the_orders_leader_mid_replay_loses_and_duplicates_nothing(trading: Trading):
    js = trading.admin.jetstream(timeout=JS_TIMEOUT_S)
    await until_stored(js, "ORDERS", sj.FILLS, 0)  # trading
    for name in [s.name for s in STREAMS] + [f"KV_{b.name}" for b in BUCKETS]:  # BOSUN_REPLICAS=3: all R3
        info = await retried(lambda n=name: js.stream_info(n), UNSETTLED, f"{name}'s info", LEADER_TIMEOUT_S)
        assert info.config.num_replicas == 3 and len(info.cluster.replicas or ()) == 2, name
    fills_before = await stored_on(js, "ORDERS", sj.FILLS)
    leader, last_seq = await stream_state(js, "ORDERS")
    node = trading.cluster.node(leader)
    also_led = [s.name for s in STREAMS if s.name != "ORDERS" and (await stream_state(js, s.name))[0] == leader]
    assert node.pid is not None
    t0 = time.monotonic()
    kill_9(node.pid)
    # The stall: until a new leader (not the dead one) stores the next order event.
    deadline = t0 + RECOVERY_TIMEOUT_S
    elected = None
    while True:
        try:
            info = await js.stream_info("ORDERS")
            if info.cluster.leader not in (None, leader):
                elected = elected or time.monotonic() - t0
                if info.state.last_seq > last_seq:
                    break
        except UNSETTLED:
            pass  # no leader yet
        assert time.monotonic() < deadline, f"ORDERS stored no order event within {RECOVERY_TIMEOUT_S}s of the kill"
        await asyncio.sleep(POLL_S)
    stall = time.monotonic() - t0
    next_fill = await until_stored(js, "ORDERS", sj.FILLS, fills_before) - t0
    node.start()  # on its store and ports: it catches up as a follower
    fills_then = await stored_on(js, "ORDERS", sj.FILLS)
    await until_stored(js, "ORDERS", sj.FILLS, fills_then)  # trading goes on with all three nodes back
    # The stall is the slowest election on the order path: the dead node may have led MARKET, TARGETS
    # and their consumers too, and each elects its leader on its own.
    report(f"kill -9 of the ORDERS leader {leader} (leading {', '.join(also_led) or 'no other stream'} too)",
           new_ORDERS_leader_after=elected,
           stall_to_the_next_stored_order_event=stall,
           to_the_next_fill=next_fill)

    await until_services_answer(trading.admin)
    submitted = await assert_order_ids_unique(js)
    fills = await assert_fills_booked_once(js, trading.database_url)
    await assert_services_agree_with_the_journal(trading.admin, js)
    assert submitted > 0 and fills
    for p in trading.services.values():
        assert p.proc is not None and p.proc.poll() is None, f"{p.service} exited:\n{p.log_text()}"


async def test_a_false_published_while_the_control_leader_fails_over_halts_trading(trading: Trading):
    js = trading.admin.jetstream(timeout=JS_TIMEOUT_S)
    await until_stored(js, "ORDERS", sj.FILLS, 0)  # trading
    leader, _ = await stream_state(js, f"KV_{sj.CONTROL_BUCKET}")
    node = trading.cluster.node(leader)
    operator = await connect([n for n in trading.cluster.nodes if n is not node], "operator", reconnect=True)
    try:
        assert node.pid is not None
        t0 = time.monotonic()
        kill_9(node.pid)
        # `nats pub '$KV.control.trading_enabled' false`, as a JetStream publish: again until stored.
        ack = await retried(lambda: operator.jetstream().publish(sj.TRADING_ENABLED, b"false", timeout=1),
                            UNSETTLED, "the kill switch's publish stored", RECOVERY_TIMEOUT_S)
        accepted = time.monotonic() - t0
        assert ack.stream == f"KV_{sj.CONTROL_BUCKET}"
        node.start()
        for service in ("risk", "execution"):
            await until_trading(trading.admin, service, False, timeout=RECOVERY_TIMEOUT_S)
        halted = time.monotonic() - t0
        kv = await trading.admin.jetstream().key_value(sj.CONTROL_BUCKET)
        assert codec.decode_trading_enabled((await kv.get(sj.TRADING_ENABLED_KEY)).value) is False
    finally:
        await operator.close()
    report(f"kill -9 of the KV control leader {leader}", false_stored_after=accepted,
           risk_and_execution_halted_after=halted)
    for p in trading.services.values():
        assert p.proc is not None and p.proc.poll() is None, f"{p.service} exited:\n{p.log_text()}"
