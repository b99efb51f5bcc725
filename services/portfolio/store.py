"""The portfolio's durable truth in PostgreSQL (asyncpg): fills, positions, round trips, funding
payments, equity snapshots and ledger snapshots.

The NATS binding calls `persist` with a fill and what the actor published for it BEFORE
acking the fill; a redelivered fill is recognised by its (venue, fill id) key and changes
nothing, a funding payment by its position and funding time. On start, `restored()` reads the
newest ledger snapshot and the fills and payments stored after it: a bounded read, whatever
the length of the history. Migrations: bosun.runtime.postgres."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from typing import Any
from pathlib import Path

import asyncpg

from bosun.runtime import postgres
from bosun.runtime.postgres import MIGRATIONS_DIR
from proto.events import EquitySnapshot, Event, FundingPaid, OrderFilled, PositionChanged
from services.portfolio import snapshot as ledger_snapshot
from services.portfolio.actor import Restored, StoreFill, StoreFunding, StoreSnapshot
from services.portfolio.positions import ZERO, Position, add
from services.portfolio.roundtrips import RoundTrip
from services.portfolio.snapshot import LedgerState

Key = tuple[str, str, str]  # client, venue, symbol


async def _while_unreachable(what: str, op: Callable[[], Awaitable[Any]]) -> Any:
    return await postgres.while_unreachable("portfolio", what, op)


# A round's fills in one statement (a round trip to the server per fill cost ~0.5 ms each, most of
# the portfolio's time). `seq` follows the order of the arrays: the order the fills were handled in.
_INSERT_FILLS = """
INSERT INTO fills (fill_id, client_order_id, client, venue, symbol, side, qty, price, fee, liquidity, reason, ts_event)
SELECT fill_id, client_order_id, client, venue, symbol, side, qty, price, fee, liquidity, reason, ts_event
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::numeric[], $8::numeric[],
            $9::numeric[], $10::text[], $11::text[], $12::bigint[])
     WITH ORDINALITY AS f(fill_id, client_order_id, client, venue, symbol, side, qty, price, fee, liquidity, reason,
                          ts_event, n)
ORDER BY n
ON CONFLICT (venue, fill_id) DO NOTHING
RETURNING venue, fill_id"""

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


_INSERT_FUNDING = """
INSERT INTO funding_payments (client, venue, symbol, funding_ts, qty, mark_price, rate, amount)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (client, venue, symbol, funding_ts) DO NOTHING
RETURNING seq"""

# realized_pnl is net of fees and funding: payments move both ($5: the round's payments after the
# position's last change in it).
_FUND_POSITION = """
UPDATE positions SET funding = $4, realized_pnl = realized_pnl - $5 WHERE client = $1 AND venue = $2 AND symbol = $3"""

_INSERT_EQUITY = """
INSERT INTO equity_snapshots (client, ts_event, capital, realized_pnl, unrealized_pnl, fees, funding, equity,
                              gross_exposure, net_exposure, unmarked)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
ON CONFLICT (client, ts_event) DO NOTHING"""

_INSERT_SNAPSHOT = """
INSERT INTO ledger_snapshots (ts_event, through_fill_seq, through_funding_seq, state)
VALUES ($1, (SELECT coalesce(max(seq), 0) FROM fills), (SELECT coalesce(max(seq), 0) FROM funding_payments), $2)
RETURNING seq"""

# A restart needs only the newest; a few more are kept for a person to look back on.
KEEP_SNAPSHOTS = 3

_FILL_COLUMNS = "fill_id, client_order_id, client, venue, symbol, side, qty, price, fee, liquidity, reason, ts_event"


def _fill(r: asyncpg.Record) -> OrderFilled:
    return OrderFilled(id=r["fill_id"], ts_event=r["ts_event"], client_order_id=r["client_order_id"],
                       client=r["client"], venue=r["venue"], symbol=r["symbol"], side=r["side"], qty=r["qty"],
                       price=r["price"], fee=r["fee"], liquidity=r["liquidity"], reason=r["reason"])


def _position_rows(moves: Sequence[PositionChanged | FundingPaid]) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The positions table's writes for a round's new moves, in the order the actor made them,
    folded per position into at most an upsert of its last change and then one funding update:
    the row they leave is the one each move applied in turn would (a change sets realized pnl
    and leaves funding; a payment sets funding and takes its amount off realized pnl)."""
    last: dict[Key, PositionChanged] = {}
    funding: dict[Key, tuple[Decimal, Decimal]] = {}  # funding so far, paid since the last change
    for m in moves:
        key = (m.client, m.venue, m.symbol)
        if isinstance(m, PositionChanged):
            last[key] = m
            if key in funding:
                funding[key] = (funding[key][0], ZERO)
        else:
            funding[key] = (m.funding, add(funding[key][1], m.amount) if key in funding else m.amount)
    upserts = [(m.client, m.venue, m.symbol, m.qty, m.avg_price, m.realized_pnl, m.fees, m.fill_id, m.ts_event)
               for m in last.values()]
    return upserts, [(*key, so_far, paid) for key, (so_far, paid) in funding.items()]


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

    async def persist(self, events: Sequence[Event], round_trips: Sequence[RoundTrip] = (),
                      snapshot: LedgerState | None = None) -> int:
        """In one transaction: insert each fill once, upsert the PositionChanged of the fills
        that were new, insert the closed round trips, book each funding payment once, insert the
        equity snapshots and, last, the ledger snapshot (after everything it covers). Returns how
        many fills were new."""
        fills = [e for e in events if isinstance(e, OrderFilled)]
        changes = [e for e in events if isinstance(e, PositionChanged)]
        # Position changes and funding payments in the order the actor made them: each leaves the
        # positions row as the actor held it then (realized pnl net of fees and of the funding so far).
        moves = [e for e in events if isinstance(e, (PositionChanged, FundingPaid))]
        equity = [e for e in events if isinstance(e, EquitySnapshot)]
        kinds = (OrderFilled, PositionChanged, FundingPaid, EquitySnapshot)
        other = [type(e).__name__ for e in events if not isinstance(e, kinds)]
        if other:
            raise TypeError(f"portfolio store persists {', '.join(k.__name__ for k in kinds)} only, "
                            f"got {', '.join(other)}")
        batch = {(f.venue, f.id) for f in fills}
        orphans = [c.fill_id for c in changes if (c.venue, c.fill_id) not in batch]
        if orphans:
            raise ValueError(f"PositionChanged for fill(s) {', '.join(orphans)} without the OrderFilled "
                             f"in the same batch: persist a fill and its position change together")
        # Safe to run again: a fill already stored changes nothing (ON CONFLICT DO NOTHING).
        state = None if snapshot is None else ledger_snapshot.encode(snapshot)
        ts = max((e.ts_event for e in equity), default=0)
        return await _while_unreachable("persisting", lambda: self._persist(fills, moves, round_trips, equity, ts,
                                                                           state))

    async def _persist(self, fills: Sequence[OrderFilled], moves: Sequence[PositionChanged | FundingPaid],
                       round_trips: Sequence[RoundTrip], equity: Sequence[EquitySnapshot], ts: int,
                       state: bytes | None) -> int:
        async with self._pool.acquire() as conn, conn.transaction():
            new: set[tuple[str, str]] = set()
            if fills:
                rows = await conn.fetch(_INSERT_FILLS, *(list(column) for column in zip(*(
                    (f.id, f.client_order_id, f.client, f.venue, f.symbol, f.side, f.qty, f.price, f.fee, f.liquidity,
                     f.reason, f.ts_event) for f in fills))))
                new = {(r["venue"], r["fill_id"]) for r in rows}
            applied: list[PositionChanged | FundingPaid] = []
            for m in moves:
                if isinstance(m, PositionChanged):
                    if (m.venue, m.fill_id) in new:
                        applied.append(m)
                elif await conn.fetchval(_INSERT_FUNDING, m.client, m.venue, m.symbol, m.ts_event, m.qty,
                                         m.mark_price, m.rate, m.amount) is not None:
                    applied.append(m)
            upserts, funded = _position_rows(applied)
            if upserts:
                await conn.executemany(_UPSERT_POSITION, upserts)
            if funded:
                await conn.executemany(_FUND_POSITION, funded)
            if round_trips:
                await conn.executemany(_INSERT_ROUND_TRIP, [
                    (t.venue, t.entry_fill_id, t.exit_fill_id, t.client, t.symbol, t.side, t.qty, t.entry_price,
                     t.exit_price, t.fees, t.pnl, t.return_pct, t.entry_time_ns, t.exit_time_ns, t.duration_s,
                     t.exit_reason) for t in round_trips])
            if equity:
                await conn.executemany(_INSERT_EQUITY, [
                    (e.client, e.ts_event, e.capital, e.realized_pnl, e.unrealized_pnl, e.fees, e.funding, e.equity,
                     e.gross_exposure, e.net_exposure, list(e.unmarked)) for e in equity])
            if state is not None:
                seq = await conn.fetchval(_INSERT_SNAPSHOT, ts, state)
                await conn.execute("DELETE FROM ledger_snapshots WHERE seq <= $1", seq - KEEP_SNAPSHOTS)
        return len(new)

    async def carry_out(self, effects: Sequence[StoreFill | StoreFunding | StoreSnapshot]) -> None:
        """The portfolio's effects of one round, in one transaction, before its inputs are acked:
        each fill with its position and the round trip it closed, each funding payment, and a due
        snapshot after them."""
        events: list[Event] = []
        trips: list[RoundTrip] = []
        state = None
        for e in effects:
            if isinstance(e, StoreFill):
                events += (e.fill, e.position)
                trips += e.closed
            elif isinstance(e, StoreFunding):
                events.append(e.payment)
            else:
                events += e.equity
                state = e.state
        await self.persist(events, trips, state)

    async def restored(self, recent_fill_ids: int) -> Restored:
        """The newest ledger snapshot, the fills and funding payments stored after it (in the order
        handled), and the (venue, fill id) of the newest `recent_fill_ids` fills before it."""
        async with self._pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            row = await conn.fetchrow("SELECT through_fill_seq, through_funding_seq, state FROM ledger_snapshots "
                                      "ORDER BY seq DESC LIMIT 1")
            fill_seq, funding_seq = (0, 0) if row is None else (row["through_fill_seq"], row["through_funding_seq"])
            fills = await conn.fetch(f"SELECT {_FILL_COLUMNS} FROM fills WHERE seq > $1 ORDER BY seq", fill_seq)
            payments = await conn.fetch("SELECT * FROM funding_payments WHERE seq > $1 ORDER BY seq", funding_seq)
            recent = await conn.fetch("SELECT venue, fill_id FROM fills WHERE seq <= $1 ORDER BY seq DESC LIMIT $2",
                                      fill_seq, recent_fill_ids)
        return Restored(
            snapshot=None if row is None else ledger_snapshot.decode(row["state"]),
            fills=[_fill(r) for r in fills],
            funding=[((r["client"], r["venue"], r["symbol"]), r["funding_ts"], r["amount"]) for r in payments],
            recent_fill_ids=[(r["venue"], r["fill_id"]) for r in reversed(recent)])

    async def fills(self, client: str | None = None) -> list[OrderFilled]:
        """Every stored fill (of `client` only, when given), in the order the portfolio handled them."""
        rows = await self._pool.fetch(
            f"SELECT {_FILL_COLUMNS} FROM fills WHERE $1::text IS NULL OR client = $1 ORDER BY seq", client)
        return [_fill(r) for r in rows]

    async def positions(self) -> dict[Key, Position]:
        """The stored positions; `realized_pnl` back to gross, as Position keeps it."""
        rows = await self._pool.fetch(
            "SELECT client, venue, symbol, qty, avg_price, realized_pnl, fees, funding FROM positions")
        return {(r["client"], r["venue"], r["symbol"]):
                Position(r["qty"], r["avg_price"], r["realized_pnl"] + r["fees"] + r["funding"], r["fees"],
                         r["funding"]) for r in rows}

    async def equity_snapshots(self, client: str) -> list[EquitySnapshot]:
        """`client`'s equity snapshots, oldest first."""
        rows = await self._pool.fetch("SELECT * FROM equity_snapshots WHERE client = $1 ORDER BY ts_event", client)
        return [EquitySnapshot(id=f"{r['client']}.{r['ts_event']}", ts_event=r["ts_event"], client=r["client"],
                               capital=r["capital"], realized_pnl=r["realized_pnl"], unrealized_pnl=r["unrealized_pnl"],
                               fees=r["fees"], funding=r["funding"], equity=r["equity"],
                               gross_exposure=r["gross_exposure"], net_exposure=r["net_exposure"],
                               unmarked=tuple(r["unmarked"])) for r in rows]

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
