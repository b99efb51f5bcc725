"""The portfolio store against a real PostgreSQL (a new empty database per test)."""

from __future__ import annotations

import asyncio
from decimal import Decimal as D

import msgspec
import pytest

from bosun.runtime.clock import SimClock
from bosun.apps.config import ClientConfig, Config
from proto.events import Event, OrderFilled, PositionChanged
from services.portfolio.actor import PortfolioActor, StoreFill
from bosun.runtime.postgres import MIGRATIONS_DIR, MigrationError
from services.portfolio.store import PortfolioStore

pytestmark = pytest.mark.integration

CONFIG = Config(clients=[ClientConfig(id="alice", capital=D(1000))], strategies=[])


def fill(n: int, side: str, qty: str, price: str, fee: str, *, symbol: str = "BTCUSDT",
         reason: str = "signal") -> OrderFilled:
    return OrderFilled(id=f"fill-{n}", ts_event=1_700_000_000_000_000_000 + n, client_order_id=f"order-{n}",
                       client="alice", venue="binance", symbol=symbol, side=side, qty=D(qty), price=D(price),
                       fee=D(fee), liquidity="maker" if n % 2 else "taker", reason=reason)


FILLS = [fill(1, "buy", "0.5", "60000.01", "0.03"), fill(2, "buy", "0.25", "61000.5", "0.0152"),
         fill(3, "sell", "1.5", "62000", "0.093", reason="take_profit"), fill(4, "buy", "0.75", "59000", "0.04425"),
         fill(5, "sell", "10", "2500.5", "0.025", symbol="ETHUSDT")]


class Captured:
    """An outbox that keeps what the actor publishes and the effects it asks for, as the NATS binding does."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.effects: list[StoreFill] = []

    def publish(self, message: Event) -> None:
        self.events.append(message)

    def effect(self, effect: StoreFill) -> None:  # type: ignore[override]
        self.effects.append(effect)

    def set_trading_enabled(self, enabled: bool) -> None:
        raise AssertionError("the portfolio never flips the kill switch")


async def handle(store: PortfolioStore, actor: PortfolioActor, out: Captured, f: OrderFilled) -> int:
    """What portfolio's process does per fill: handle it, then carry out its StoreFill before the ack."""
    out.events.clear()
    out.effects.clear()
    actor.on_order_filled(f)
    new = 0
    for e in out.effects:
        new += await store.persist([e.fill, e.position], e.closed)
    return new


@pytest.fixture
async def store(fresh_database_url):
    store = await PortfolioStore.connect(fresh_database_url)
    await store.migrate()
    yield store
    await store.close()


async def test_migrate_applies_each_file_once(fresh_database_url):
    first, second = await PortfolioStore.connect(fresh_database_url), await PortfolioStore.connect(fresh_database_url)
    try:
        # Two processes starting together: the advisory lock lets one apply, the other finds it done.
        applied = await asyncio.gather(first.migrate(), second.migrate())
        expected = sorted(p.name for p in MIGRATIONS_DIR.glob("*.sql"))
        assert "001_portfolio.sql" in expected
        assert sorted(applied[0] + applied[1]) == expected
        assert await first.migrate() == []
        assert await first.fills() == []
    finally:
        await first.close()
        await second.close()


async def test_a_changed_migration_is_refused(fresh_database_url, tmp_path):
    migration = tmp_path / "001_demo.sql"
    migration.write_text("CREATE TABLE demo (x int);")
    store = await PortfolioStore.connect(fresh_database_url)
    try:
        assert await store.migrate(tmp_path) == ["001_demo.sql"]
        migration.write_text("CREATE TABLE demo (x bigint);")
        with pytest.raises(MigrationError, match="001_demo.sql.*changed after it was applied"):
            await store.migrate(tmp_path)
    finally:
        await store.close()


async def test_persist_is_idempotent_on_fill_id(store):
    out = Captured()
    actor = PortfolioActor(SimClock(), out, CONFIG.portfolio_config())
    assert await handle(store, actor, out, FILLS[0]) == 1
    [change] = out.events
    assert await store.persist([FILLS[0], change]) == 0  # a redelivery before the ack landed
    # A redelivered fill never rewrites the position, whatever comes with it.
    stale = msgspec.structs.replace(change, qty=D(99))
    assert await store.persist([FILLS[0], stale]) == 0
    assert (await store.positions())[("alice", "binance", "BTCUSDT")].qty == D("0.5")
    assert await store.fills() == [FILLS[0]]


async def test_a_position_change_without_its_fill_is_refused(store):
    change = PositionChanged(id="fill-9", ts_event=0, client="alice", venue="binance", symbol="BTCUSDT", qty=D(1),
                             avg_price=D(1), realized_pnl=D(0), unrealized_pnl=D(0), fees=D(0), fill_id="fill-9")
    with pytest.raises(ValueError, match="fill-9"):
        await store.persist([change])
    assert await store.positions() == {}


async def test_fills_positions_and_round_trips_round_trip(store):
    out = Captured()
    actor = PortfolioActor(SimClock(), out, CONFIG.portfolio_config())
    for f in FILLS:
        assert await handle(store, actor, out, f) == 1
    assert await store.fills() == FILLS  # exact Decimals, in handling order
    assert await store.positions() == actor.positions()
    assert await store.round_trips() == actor.round_trips()
    assert [(t.side, t.qty, t.exit_reason) for t in actor.round_trips()] == [
        ("long", D("0.75"), "take_profit"), ("short", D("0.75"), "signal")]  # fill 3 flipped, fill 4 closed


async def test_an_actor_restored_from_stored_fills_has_the_same_positions(store):
    out = Captured()
    live = PortfolioActor(SimClock(), out, CONFIG.portfolio_config())
    for f in FILLS:
        await handle(store, live, out, f)

    restored_out = Captured()
    restored = PortfolioActor(SimClock(), restored_out, CONFIG.portfolio_config(), fills=await store.fills())
    assert restored.positions() == live.positions()
    assert restored.round_trips() == live.round_trips()
    assert restored.equity("alice") == live.equity("alice")
    assert restored_out.events == []
    # After the restart, JetStream redelivers the last unacked fill: nothing changes.
    assert await handle(store, restored, restored_out, FILLS[-1]) == 0
    assert restored_out.events == []
