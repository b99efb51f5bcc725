"""Execution's intents in PostgreSQL (asyncpg, schema `execution`, infra/postgres/003_execution.sql).

The NATS binding hands `record` the actor's Record* effects of one round BEFORE it acks the
messages that caused them (an approved target) and before it publishes what they decided: what
execution meant to do is committed first. Every write is an upsert keyed by the target id, the
client order id or the market, so a redelivered message changes nothing. `snapshot()` is what a
restart reads: each position's protective levels and its newest recorded fill."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import asyncpg

from bosun.runtime import postgres
from bosun.runtime.postgres import MIGRATIONS_DIR
from proto import codec
from proto.events import OrderAccepted, OrderCanceled, OrderFilled, OrderRejected, SubmitOrder
from services.execution.records import Protection, RecordIntent, RecordOrderEntry, Snapshot

_CLOSED_BY = {OrderFilled: "filled", OrderCanceled: "canceled", OrderRejected: "rejected"}

_INSERT_INTENT = """
INSERT INTO execution.intents (target_id, client, venue, symbol, qty, stop_loss, take_profit, reason, ts_event)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (target_id) DO NOTHING"""

_SET_PROTECTION = """
INSERT INTO execution.positions (client, venue, symbol, target_id, stop_loss, take_profit)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (client, venue, symbol) DO UPDATE SET
    target_id = EXCLUDED.target_id, stop_loss = EXCLUDED.stop_loss, take_profit = EXCLUDED.take_profit"""

_INSERT_ORDER = """
INSERT INTO execution.orders (client_order_id, target_id, client, venue, symbol, order_type, command, state,
                              remaining, ts_event)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (client_order_id) DO NOTHING"""

_UPDATE_ORDER = """
UPDATE execution.orders SET state = $2, remaining = coalesce($3, remaining),
                            venue_order_id = coalesce($4, venue_order_id)
WHERE client_order_id = $1"""

_SET_POSITION = """
INSERT INTO execution.positions (client, venue, symbol, qty, last_fill_id, last_fill_ns)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (client, venue, symbol) DO UPDATE SET
    qty = EXCLUDED.qty,
    last_fill_id = CASE WHEN coalesce(execution.positions.last_fill_ns, 0) <= EXCLUDED.last_fill_ns
                        THEN EXCLUDED.last_fill_id ELSE execution.positions.last_fill_id END,
    last_fill_ns = greatest(coalesce(execution.positions.last_fill_ns, 0), EXCLUDED.last_fill_ns)"""


class ExecutionStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @classmethod
    async def connect(cls, url: str) -> ExecutionStore:
        return cls(await postgres.connect("execution", url))

    async def close(self) -> None:
        await self._pool.close()

    async def migrate(self, directory: Path = MIGRATIONS_DIR) -> list[str]:
        return await postgres.migrate(self._pool, directory)

    async def record(self, effects: Sequence[Any]) -> None:
        """One round's Record* effects, in one transaction, in the order they were asked for."""
        await postgres.while_unreachable("execution", "recording", lambda: self._record(effects))

    async def _record(self, effects: Sequence[Any]) -> None:
        # One statement per table and kind, each over its rows in the order asked (executemany: one
        # round trip, not one per row). Kinds touch different rows or columns, so their order is free,
        # except an order's insert, which comes before its updates.
        intents, protection, inserts, updates, positions = [], [], [], [], []
        for effect in effects:
            if type(effect) is RecordIntent:
                t, p = effect.target, effect.protection
                intents.append((t.id, t.client, t.venue, t.symbol, t.qty, t.stop_loss, t.take_profit, t.reason,
                                t.ts_event))
                protection.append((t.client, t.venue, t.symbol, *((None,) * 3 if p is None else p)))
            elif type(effect) is RecordOrderEntry:
                e, remaining = effect.entry, effect.remaining
                kind = type(e)
                if kind is SubmitOrder:
                    inserts.append((e.id, e.target_id, e.client, e.venue, e.symbol, e.order_type, codec.encode(e),
                                    "open", e.qty, e.ts_event))
                    continue
                state = "open" if remaining is not None else _CLOSED_BY.get(kind, "open")
                venue_order_id = e.venue_order_id if kind is OrderAccepted else None
                updates.append((e.client_order_id, state, remaining, venue_order_id))
                if kind is OrderFilled:
                    positions.append((e.client, e.venue, e.symbol, effect.position, e.id, e.ts_event))
            else:
                raise TypeError(f"execution's store records RecordIntent and RecordOrderEntry, "
                                f"not {type(effect).__name__}")
        async with self._pool.acquire() as conn, conn.transaction():
            for statement, rows in ((_INSERT_INTENT, intents), (_SET_PROTECTION, protection), (_INSERT_ORDER, inserts),
                                    (_UPDATE_ORDER, updates), (_SET_POSITION, positions)):
                if len(rows) == 1:  # the usual round: one approval, one order (executemany costs more for one row)
                    await conn.execute(statement, *rows[0])
                elif rows:
                    await conn.executemany(statement, rows)

    async def snapshot(self) -> Snapshot:
        rows = await self._pool.fetch("SELECT client, venue, symbol, target_id, stop_loss, take_profit, last_fill_id, "
                                      "last_fill_ns FROM execution.positions")
        protection = {(r["client"], r["venue"], r["symbol"]): Protection(r["target_id"], r["stop_loss"],
                                                                          r["take_profit"])
                      for r in rows if r["target_id"] is not None}
        last_fills = {(r["client"], r["venue"], r["symbol"]): (r["last_fill_id"], r["last_fill_ns"])
                      for r in rows if r["last_fill_id"] is not None}
        return Snapshot(protection, last_fills)
