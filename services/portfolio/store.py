"""The portfolio's durable truth in PostgreSQL (asyncpg): fills, positions, round trips.

The NATS binding calls `persist` with a fill and what the actor published for it BEFORE
acking the fill; a redelivered fill is recognised by its (venue, fill id) key and changes
nothing. On start, `fills()` in handling order restores the actor. Migrations: bosun.runtime.postgres."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from pathlib import Path

import asyncpg

from bosun.runtime import postgres
from bosun.runtime.postgres import MIGRATIONS_DIR
from proto.events import Event, OrderFilled, PositionChanged
from services.portfolio.positions import Position
from services.portfolio.roundtrips import RoundTrip

Key = tuple[str, str, str]  # client, venue, symbol


async def _while_unreachable(what: str, op: Callable[[], Awaitable[Any]]) -> Any:
    return await postgres.while_unreachable("portfolio", what, op)


_INSERT_FILL = """
INSERT INTO fills (fill_id, client_order_id, client, venue, symbol, side, qty, price, fee, liquidity, reason, ts_event)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
ON CONFLICT (venue, fill_id) DO NOTHING
RETURNING fill_id"""

_UPSERT_POSITION = """
INSERT INTO positions (client, venue, symbol, qty, avg_price, realized_pnl, fees, fill_id, updated_ts)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (client, venue, symbol) DO UPDATE SET
    qty = EXCLUDED.qty, avg_price = EXCLUDED.avg_price, realized_pnl = EXCLUDED.realized_pnl,
    fees = EXCLUDED.fees, fill_id = EXCLUDED.fill_id, updated_ts = EXCLUDED.updated_ts"""

_INSERT_ROUND_TRIP = """
INSERT INTO round_trips (venue, entry_fill_id, exit_fill_id, client, symbol, side, qty, entry_price, exit_price,
                         fees, pnl, return_pct, entry_time_ns, exit_time_ns, duration_s, exit_reason)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
ON CONFLICT (venue, entry_fill_id) DO NOTHING"""


class PortfolioStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @classmethod
    async def connect(cls, url: str, *, max_size: int = 4, command_timeout_s: float = 30.0) -> PortfolioStore:
        return cls(await postgres.connect("portfolio", url, max_size=max_size,
                                          command_timeout_s=command_timeout_s))

    async def close(self) -> None:
        await self._pool.close()

    async def migrate(self, directory: Path = MIGRATIONS_DIR) -> list[str]:
        """Apply the migrations not yet applied (bosun.runtime.postgres.migrate)."""
        return await postgres.migrate(self._pool, directory)

    async def persist(self, events: Sequence[Event], round_trips: Sequence[RoundTrip] = ()) -> int:
        """In one transaction: insert each fill once, upsert the PositionChanged of the fills
        that were new, insert the closed round trips. Returns how many fills were new."""
        fills = [e for e in events if isinstance(e, OrderFilled)]
        changes = [e for e in events if isinstance(e, PositionChanged)]
        other = [type(e).__name__ for e in events if not isinstance(e, (OrderFilled, PositionChanged))]
        if other:
            raise TypeError(f"portfolio store persists OrderFilled and PositionChanged only, got {', '.join(other)}")
        batch = {(f.venue, f.id) for f in fills}
        orphans = [c.fill_id for c in changes if (c.venue, c.fill_id) not in batch]
        if orphans:
            raise ValueError(f"PositionChanged for fill(s) {', '.join(orphans)} without the OrderFilled "
                             f"in the same batch: persist a fill and its position change together")
        # Safe to run again: a fill already stored changes nothing (ON CONFLICT DO NOTHING).
        return await _while_unreachable("persisting", lambda: self._persist(fills, changes, round_trips))

    async def _persist(self, fills: Sequence[OrderFilled], changes: Sequence[PositionChanged],
                       round_trips: Sequence[RoundTrip]) -> int:
        async with self._pool.acquire() as conn, conn.transaction():
            new: set[tuple[str, str]] = set()
            for f in fills:
                if await conn.fetchval(_INSERT_FILL, f.id, f.client_order_id, f.client, f.venue, f.symbol, f.side,
                                       f.qty, f.price, f.fee, f.liquidity, f.reason, f.ts_event) is not None:
                    new.add((f.venue, f.id))
            for c in changes:
                if (c.venue, c.fill_id) in new:
                    await conn.execute(_UPSERT_POSITION, c.client, c.venue, c.symbol, c.qty, c.avg_price,
                                       c.realized_pnl, c.fees, c.fill_id, c.ts_event)
            if round_trips:
                await conn.executemany(_INSERT_ROUND_TRIP, [
                    (t.venue, t.entry_fill_id, t.exit_fill_id, t.client, t.symbol, t.side, t.qty, t.entry_price,
                     t.exit_price, t.fees, t.pnl, t.return_pct, t.entry_time_ns, t.exit_time_ns, t.duration_s,
                     t.exit_reason) for t in round_trips])
        return len(new)

    async def fills(self, client: str | None = None) -> list[OrderFilled]:
        """Every stored fill (of `client` only, when given), in the order the portfolio handled them."""
        rows = await self._pool.fetch(
            "SELECT fill_id, client_order_id, client, venue, symbol, side, qty, price, fee, liquidity, reason, "
            "ts_event FROM fills WHERE $1::text IS NULL OR client = $1 ORDER BY seq", client)
        return [OrderFilled(id=r["fill_id"], ts_event=r["ts_event"], client_order_id=r["client_order_id"],
                            client=r["client"], venue=r["venue"], symbol=r["symbol"], side=r["side"], qty=r["qty"],
                            price=r["price"], fee=r["fee"], liquidity=r["liquidity"], reason=r["reason"])
                for r in rows]

    async def positions(self) -> dict[Key, Position]:
        """The stored positions; `realized_pnl` back to gross, as Position keeps it."""
        rows = await self._pool.fetch("SELECT client, venue, symbol, qty, avg_price, realized_pnl, fees FROM positions")
        return {(r["client"], r["venue"], r["symbol"]):
                Position(r["qty"], r["avg_price"], r["realized_pnl"] + r["fees"], r["fees"]) for r in rows}

    async def clients(self) -> list[str]:
        """The clients that have fills, sorted."""
        return [r["client"] for r in await self._pool.fetch("SELECT DISTINCT client FROM fills ORDER BY client")]

    async def round_trips(self, client: str | None = None) -> list[RoundTrip]:
        """The closed round trips (of `client` only, when given)."""
        rows = await self._pool.fetch(
            "SELECT * FROM round_trips WHERE $1::text IS NULL OR client = $1 "
            "ORDER BY exit_time_ns, venue, entry_fill_id", client)
        return [RoundTrip(entry_time_ns=r["entry_time_ns"], exit_time_ns=r["exit_time_ns"], symbol=r["symbol"],
                          venue=r["venue"], client=r["client"], side=r["side"], qty=r["qty"],
                          entry_price=r["entry_price"], exit_price=r["exit_price"], fees=r["fees"], pnl=r["pnl"],
                          return_pct=r["return_pct"], duration_s=r["duration_s"], exit_reason=r["exit_reason"],
                          entry_fill_id=r["entry_fill_id"], exit_fill_id=r["exit_fill_id"])
                for r in rows]
