"""Execution's intents in a real PostgreSQL: what the actor asks to record (its Record* effects,
taken from a real actor on the in-process bus) is committed once, a redelivered round changes
nothing, and a restart reads back each position's protective levels and newest fill."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal as D

import asyncpg
import pytest

from bosun.runtime.actor import Effect
from bosun.runtime.clock import SimClock
from bosun.runtime.inproc import InProcessBus
from proto.events import OrderAccepted, OrderFilled, TargetApproved, TargetPosition
from services.execution.actor import ExecutionActor
from services.execution.config import ExecutionConfig, VenueConfig
from services.execution.orders import client_order_id
from services.execution.records import Protection
from services.execution.store import ExecutionStore

T0 = 1_727_751_600_000_000_000
KEY = ("alice", "binance", "BTCUSDT")


@pytest.fixture
async def store(fresh_database_url: str) -> AsyncIterator[ExecutionStore]:
    store = await ExecutionStore.connect(fresh_database_url)
    try:
        await store.migrate()
        yield store
    finally:
        await store.close()


def actor_asking() -> tuple[ExecutionActor, list[Effect]]:
    bus, asked = InProcessBus(), []
    bus.on_effect(asked.append)
    bus.set_trading_enabled(True)
    config = ExecutionConfig(venues={"alice": {"binance": VenueConfig(kind="live")}})
    actor = ExecutionActor(SimClock(T0), bus, config, durable=True)
    bus.attach(actor)
    return actor, asked


def approved(tid: str, qty: str, **levels: D) -> TargetApproved:
    target = TargetPosition(id=tid, ts_event=T0, client="alice", venue="binance", symbol="BTCUSDT", qty=D(qty),
                            strategy="test", price=D(60000), **levels)
    return TargetApproved(id=tid, ts_event=T0, target=target)


def fill(coid: str, n: int, qty: str) -> OrderFilled:
    return OrderFilled(id=f"binance-{n}", ts_event=T0 + n, client_order_id=coid, client="alice", venue="binance",
                       symbol="BTCUSDT", side="buy", qty=D(qty), price=D(60000), fee=D(0))


async def test_intents_orders_and_levels_are_recorded_once_and_read_back(store: ExecutionStore,
                                                                          fresh_database_url: str) -> None:
    actor, asked = actor_asking()
    actor.on_target_approved(approved("t1", "0.02", stop_loss=D(50000)))
    coid = client_order_id("t1", 1)
    actor.on_order_event(OrderAccepted(id=coid, ts_event=T0, client_order_id=coid, venue_order_id="v1",
                                       client="alice", venue="binance", symbol="BTCUSDT"))
    actor.on_order_event(fill(coid, 1, "0.015"))
    actor.on_order_event(fill(coid, 2, "0.005"))
    assert [type(e).__name__ for e in asked[:3]] == ["RecordIntent", "RecordOrderEntry", "RecordOrderEntry"]
    await store.record(asked)
    await store.record(asked)  # a redelivered round: the same rows, nothing twice

    conn = await asyncpg.connect(fresh_database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM execution.intents") == 1
        orders = await conn.fetch("SELECT client_order_id, order_type, state, remaining, venue_order_id "
                                  "FROM execution.orders ORDER BY client_order_id")
    finally:
        await conn.close()
    states = {r["client_order_id"]: (r["order_type"], r["state"], r["remaining"], r["venue_order_id"])
              for r in orders}
    assert states[coid] == ("market", "filled", D("0.005"), "v1")  # the last open remaining is kept
    assert states[client_order_id("t1", 2)][:2] == ("stop_market", "open")

    snapshot = await store.snapshot()
    assert snapshot.protection == {KEY: Protection("t1", D(50000), None)}
    assert snapshot.last_fills == {KEY: ("binance-2", T0 + 2)}


async def test_a_flat_target_clears_the_levels(store: ExecutionStore) -> None:
    actor, asked = actor_asking()
    actor.on_target_approved(approved("t1", "0.02", stop_loss=D(50000)))
    actor.on_target_approved(approved("t2", "0"))
    await store.record(asked)
    assert (await store.snapshot()).protection == {}
