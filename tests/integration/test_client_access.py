"""A client-scoped NATS user (`bosun nats-users`) on a real nats-server, beside the per-service
users, against the portfolio service as a real process: it reads its own book from the portfolio
endpoint and its own subjects, and nothing of another client's."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import time
from decimal import Decimal
from pathlib import Path

import pytest
from nats.aio.client import Client
from nats.errors import TimeoutError as NatsTimeout
from nats.js import api

from bosun.apps import control, nats_users
from proto import codec
from proto import events as ev
from proto import subjects as sj
from tests.builders import ALICE_SMA, publish
from tests.integration.test_nats_permissions import REFUSED_WITHIN_S, connected
from tests.natscluster import INFRA, Errors, SecuredNats, new_passwords
from tests.natshelp import Collector
from tests.processes import ServiceProcess, server_env

CLIENTS = ("alice", "bob")
TWO_CLIENTS = ALICE_SMA + """
[[clients]]
id = "bob"
capital = "20000"
strategies = ["sma_btc"]
[clients.venues.binance]
"""


def fill(n: int, client: str, side: str, qty: str, price: str) -> ev.OrderFilled:
    return ev.OrderFilled(id=f"{client}-f{n}", ts_event=time.time_ns(), client_order_id=f"{client}-o{n}",
                          client=client, venue="binance", symbol="BTCUSDT", side=side, qty=Decimal(qty),
                          price=Decimal(price), fee=Decimal("0.5"))


async def refused_subscription(errors: Errors, subject: str, timeout: float = 5.0) -> None:
    expected = f'permissions violation for subscription to "{subject}"'
    deadline = time.monotonic() + timeout
    while not any(expected in e.lower() for e in errors.seen):
        assert time.monotonic() < deadline, f"no {expected!r} within {timeout}s: {errors.seen}"
        errors._arrived.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(errors._arrived.wait(), max(deadline - time.monotonic(), 0))


@pytest.fixture
def server(tmp_path: Path):
    """bosun.conf as shipped, with users.conf extended by `bosun nats-users --client alice --client bob`."""
    conf_dir = tmp_path / "infra"
    conf_dir.mkdir()
    shutil.copy(INFRA / "bosun.conf", conf_dir / "bosun.conf")
    (conf_dir / "users.conf").write_text(nats_users.with_clients((INFRA / "users.conf").read_text(), CLIENTS))
    passwords = {**new_passwords(), **{nats_users.user_name(c): f"p{c}-secret" for c in CLIENTS}}
    with SecuredNats(tmp_path / "nats", passwords, conf=conf_dir / "bosun.conf") as running:
        yield running


async def test_a_client_user_reads_only_its_own_book_and_subjects(server: SecuredNats, tmp_path: Path,
                                                                  fresh_database_url: str):
    config = tmp_path / "bosun.toml"
    config.write_text(TWO_CLIENTS)
    async with contextlib.AsyncExitStack() as stack:
        admin = await connected(stack, server, "admin")
        portfolio = ServiceProcess("portfolio", config, tmp_path, server_env(server.url("portfolio"), fresh_database_url))
        stack.callback(portfolio.stop)
        await portfolio.start(admin)
        execution = await connected(stack, server, "execution")
        async with Collector(admin, "position.changed.>") as changes:
            for event in (fill(1, "alice", "buy", "0.5", "60000"), fill(1, "bob", "sell", "3", "61000"),
                          fill(2, "bob", "buy", "1", "60500")):
                await publish(execution, event, timeout=REFUSED_WITHIN_S)
            await changes.wait(3, timeout=10)

        errors = Errors()
        alice: Client = await connected(stack, server, nats_users.user_name("alice"), errors)
        reply = await alice.request(sj.portfolio_client("alice"), b"", timeout=5)
        book = json.loads(reply.data)
        assert book["client"] == "alice" and book["capital"] == "10000"
        assert [(p["symbol"], p["qty"]) for p in book["positions"]] == [("BTCUSDT", "0.5")]
        assert book["pnl"]["fees"] == "0.5" and book["exposure"]["gross"] == "30000.0"
        assert b"bob" not in reply.data and b"61000" not in reply.data

        # bob's book: not for alice's user (the request is refused); admin (`bosun status --client bob`) gets
        # bob's alone.
        with pytest.raises(NatsTimeout):
            await alice.request(sj.portfolio_client("bob"), b"", timeout=REFUSED_WITHIN_S)
        await errors.refused(sj.portfolio_client("bob"))
        bob = await control.client_book(admin, "bob")
        assert bob is not None and [p["qty"] for p in bob["positions"]] == ["-2"] and "alice" not in json.dumps(bob)

        # Its own subjects, live and from the stream (a consumer filtered to them); bob's: refused.
        await alice.subscribe("position.changed.bob.>")
        await refused_subscription(errors, "position.changed.bob.>")
        js = alice.jetstream(timeout=REFUSED_WITHIN_S)
        inbox = alice.new_inbox()
        async with Collector(alice, inbox) as own:
            await js.add_consumer("POSITIONS", api.ConsumerConfig(
                name="alice-reads", filter_subject="position.changed.alice.>", deliver_subject=inbox,
                ack_policy=api.AckPolicy.NONE, inactive_threshold=5.0))
            [msg] = await own.wait(1, timeout=5)
        assert codec.decode(msg.data, ev.PositionChanged).client == "alice"
        for refused in ({"filter_subject": "position.changed.bob.>"}, {}):
            with pytest.raises(NatsTimeout):
                await js.add_consumer("POSITIONS", api.ConsumerConfig(
                    name="alice-snoops", deliver_subject=inbox, ack_policy=api.AckPolicy.NONE, **refused))
        # and it publishes nothing: no fill, no kill switch
        with pytest.raises(NatsTimeout):
            await publish(alice, fill(9, "alice", "buy", "1", "1"), timeout=REFUSED_WITHIN_S)
        await alice.publish(sj.TRADING_ENABLED, b"false")
        await errors.refused(sj.TRADING_ENABLED)
    assert "permissions violation" not in portfolio.log_text().lower()
