"""The portfolio store against a real PostgreSQL (a new empty database per test)."""

from __future__ import annotations

import asyncio
from decimal import Decimal as D

import msgspec
import pytest

from bosun.runtime.clock import SimClock
from bosun.apps.config import ClientConfig, Config
from proto.events import EquitySnapshot, Event, FundingRateSettled, OrderFilled, PositionChanged
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


def funding(n: int, rate: str, symbol: str = "BTCUSDT", mark: str | None = "60500.5") -> FundingRateSettled:
    return FundingRateSettled(id=f"f{n}", ts_event=1_700_000_000_000_000_000 + 1_000 * n, venue="binance",
                              symbol=symbol, rate=D(rate), mark_price=None if mark is None else D(mark))


async def test_a_restart_from_a_snapshot_plus_what_came_after_equals_one_that_never_stopped(store):
    """Fills and funding, a snapshot, more fills and funding: the restored actor holds exactly the
    same positions, funding, running round trips and equity, and knows the fills already applied."""
    out = Captured()
    live = PortfolioActor(SimClock(1_700_000_000_000_000_000), out, CONFIG.portfolio_config())
    steps = [FILLS[0], FILLS[1], funding(1, "0.0001"), FILLS[4], funding(2, "-0.00025", "ETHUSDT", None), "snapshot",
             FILLS[2], funding(3, "0.0003"), FILLS[3], funding(3, "0.0003"), funding(4, "0.0002", "ETHUSDT", None)]
    for step in steps:
        if step == "snapshot":
            live.on_snapshot_due(live.clock.now_ns())
        elif isinstance(step, OrderFilled):
            live.on_order_filled(step)
        else:
            live.on_funding_rate_settled(step)
        await store.carry_out(out.effects)
        out.effects.clear()
    [equity] = [e for e in out.events if isinstance(e, EquitySnapshot)]
    assert equity.equity == (await store.equity_snapshots("alice"))[0].equity

    restored = await store.restored(recent_fill_ids=100)
    assert restored.snapshot is not None
    assert restored.fills == [FILLS[2], FILLS[3]] and len(restored.funding) == 2  # only what came after
    again = PortfolioActor(SimClock(), Captured(), CONFIG.portfolio_config(), restored=restored)
    assert again.positions() == live.positions()
    assert {k: p.cost for k, p in again.positions().items()} == {k: p.cost for k, p in live.positions().items()}
    assert again.equity("alice") == live.equity("alice")
    assert again.status()["open_round_trips"] == live.status()["open_round_trips"]
    assert await store.positions() == live.positions()
    # A fill from before the snapshot redelivered, a funding time booked again: nothing changes.
    again.on_order_filled(FILLS[0])
    again.on_funding_rate_settled(funding(1, "0.0001"))
    again.on_funding_rate_settled(funding(4, "0.0002", "ETHUSDT", None))
    assert again.positions() == live.positions() and again.out.events == []
    eth = live.positions()[("alice", "binance", "ETHUSDT")]
    assert eth.funding == D(-10) * D("2500.5") * D("-0.00025") + D(-10) * D("2500.5") * D("0.0002")


async def test_funding_and_fills_of_one_round_leave_the_stored_position_as_the_actor_holds_it(store):
    """One round (one transaction) with a fill, a funding payment, another fill of the same position
    and a payment again: realized pnl net of fees and funding, stored exactly as the actor has it."""
    out = Captured()
    live = PortfolioActor(SimClock(), out, CONFIG.portfolio_config())
    live.on_order_filled(FILLS[0])
    live.on_funding_rate_settled(funding(1, "0.0001"))
    live.on_order_filled(FILLS[1])
    live.on_funding_rate_settled(funding(2, "-0.0003"))
    await store.carry_out(out.effects)
    key = ("alice", "binance", "BTCUSDT")
    assert (await store.positions())[key] == live.positions()[key]
    assert live.positions()[key].funding != 0


async def test_a_round_of_fills_stores_them_in_handling_order_and_each_position_as_its_last_new_fill_left_it(store):
    """One round (one statement): fills of two positions, a round trip closed, and a redelivered fill
    last with a stale change: the new fills stored in the order handled, each position as the
    actor holds it (the redelivery's change ignored), the round trips once."""
    out = Captured()
    actor = PortfolioActor(SimClock(), out, CONFIG.portfolio_config())
    assert await handle(store, actor, out, FILLS[0]) == 1
    [first] = out.events
    out.effects.clear()
    for f in FILLS[1:]:
        actor.on_order_filled(f)
    stale = msgspec.structs.replace(first, qty=D(99))
    events = [event for e in out.effects for event in (e.fill, e.position)] + [FILLS[0], stale]
    trips = [t for e in out.effects for t in e.closed]
    assert await store.persist(events, trips) == len(FILLS) - 1
    assert await store.fills() == FILLS
    assert await store.positions() == actor.positions()
    assert await store.round_trips() == actor.round_trips() and len(trips) == 2
    assert await store.persist(events, trips) == 0  # the whole round redelivered: nothing changes
    assert await store.positions() == actor.positions() and await store.round_trips() == actor.round_trips()


async def test_funding_paid_before_a_fill_of_the_same_round_leaves_the_position_as_the_actor_holds_it(store):
    out = Captured()
    live = PortfolioActor(SimClock(), out, CONFIG.portfolio_config())
    live.on_order_filled(FILLS[0])
    await store.carry_out(out.effects)
    out.effects.clear()
    live.on_funding_rate_settled(funding(1, "0.0001"))
    live.on_order_filled(FILLS[1])
    await store.carry_out(out.effects)
    key = ("alice", "binance", "BTCUSDT")
    assert (await store.positions())[key] == live.positions()[key]
    assert live.positions()[key].funding != 0
