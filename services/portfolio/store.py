"""The portfolio's durable truth in PostgreSQL (asyncpg): fills, positions, round trips, funding
payments, equity snapshots and ledger snapshots.

The NATS binding has a round's effects carried out (`carry_out`: its fills, what the actor
published for them, funding, a due snapshot) BEFORE acking the round's inputs, in one transaction:
a round of fills only is one statement, one round trip to the server. A redelivered fill is recognised by its (venue, fill id) key and changes
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


# A round's fills, the positions they leave and the round trips they closed, in ONE statement:
# a round trip to the server per fill and per position cost ~0.5 ms each, most of the portfolio's
# time, and a single statement is atomic without BEGIN and COMMIT round trips of its own.
# - fills: `seq` follows the order of the arrays, the order the fills were handled in;
# - positions: of the changes whose fill was new, each position's last (by its place in the arrays);
# - round trips: each once (a fill opens at most one).
# Returns the fills that were new.
_BOOK_FILLS = """
WITH new AS (
    INSERT INTO fills (fill_id, client_order_id, client, venue, symbol, side, qty, price, fee, liquidity, reason,
                       ts_event)
    SELECT fill_id, client_order_id, client, venue, symbol, side, qty, price, fee, liquidity, reason, ts_event
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::numeric[],
                $8::numeric[], $9::numeric[], $10::text[], $11::text[], $12::bigint[])
         WITH ORDINALITY AS f(fill_id, client_order_id, client, venue, symbol, side, qty, price, fee, liquidity,
                              reason, ts_event, n)
    ORDER BY n
    ON CONFLICT (venue, fill_id) DO NOTHING
    RETURNING venue, fill_id
), moved AS (
    INSERT INTO positions (client, venue, symbol, qty, avg_price, realized_pnl, fees, fill_id, updated_ts)
    SELECT DISTINCT ON (p.client, p.venue, p.symbol)
           p.client, p.venue, p.symbol, p.qty, p.avg_price, p.realized_pnl, p.fees, p.fill_id, p.updated_ts
    FROM unnest($13::text[], $14::text[], $15::text[], $16::numeric[], $17::numeric[], $18::numeric[],
                $19::numeric[], $20::text[], $21::bigint[])
         WITH ORDINALITY AS p(client, venue, symbol, qty, avg_price, realized_pnl, fees, fill_id, updated_ts, n)
    JOIN new ON new.venue = p.venue AND new.fill_id = p.fill_id
    ORDER BY p.client, p.venue, p.symbol, p.n DESC
    ON CONFLICT (client, venue, symbol) DO UPDATE SET
        qty = EXCLUDED.qty, avg_price = EXCLUDED.avg_price, realized_pnl = EXCLUDED.realized_pnl,
        fees = EXCLUDED.fees, fill_id = EXCLUDED.fill_id, updated_ts = EXCLUDED.updated_ts
), closed AS (
    INSERT INTO round_trips (venue, entry_fill_id, exit_fill_id, client, symbol, side, qty, entry_price, exit_price,
                             fees, pnl, return_pct, entry_time_ns, exit_time_ns, duration_s, exit_reason)
    SELECT * FROM unnest($22::text[], $23::text[], $24::text[], $25::text[], $26::text[], $27::text[],
                         $28::numeric[], $29::numeric[], $30::numeric[], $31::numeric[], $32::numeric[],
                         $33::numeric[], $34::bigint[], $35::bigint[], $36::float8[], $37::text[])
    ON CONFLICT (venue, entry_fill_id) DO NOTHING
)
SELECT venue, fill_id FROM new"""


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows as `width` arrays, one per column: the parameters of an unnest."""
    return [list(column) for column in zip(*rows)] if rows else [[] for _ in range(width)]


def _book_fills_args(fills: Sequence[OrderFilled], changes: Sequence[PositionChanged],
                     round_trips: Sequence[RoundTrip]) -> list[list[Any]]:
    return [
        *_columns([(f.id, f.client_order_id, f.client, f.venue, f.symbol, f.side, f.qty, f.price, f.fee, f.liquidity,
                    f.reason, f.ts_event) for f in fills], 12),
        *_columns([(c.client, c.venue, c.symbol, c.qty, c.avg_price, c.realized_pnl, c.fees, c.fill_id, c.ts_event)
                   for c in changes], 9),
        *_columns([(t.venue, t.entry_fill_id, t.exit_fill_id, t.client, t.symbol, t.side, t.qty, t.entry_price,
                    t.exit_price, t.fees, t.pnl, t.return_pct, t.entry_time_ns, t.exit_time_ns, t.duration_s,
                    t.exit_reason) for t in round_trips], 16)]


_INSERT_FUNDING = """
INSERT INTO funding_payments (client, venue, symbol, funding_ts, qty, mark_price, rate, amount)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (client, venue, symbol, funding_ts) DO NOTHING
RETURNING seq"""

# realized_pnl is net of fees and funding: payments move both ($4: the funding so far, $5: what the
# round paid after the position's last change in it).
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


def _funding_rows(moves: Sequence[PositionChanged | FundingPaid]) -> list[tuple[Any, ...]]:
    """The positions table's funding updates for a round's new moves (in the order the actor made
    them), written after each position's last change of the round: per position, the funding so
    far and what was paid after that change. The row left is the one each move applied in turn
    would leave (a change sets realized pnl and leaves funding; a payment sets funding and takes
    its amount off realized pnl)."""
    funding: dict[Key, tuple[Decimal, Decimal]] = {}  # funding so far, paid since the last change
    for m in moves:
        key = (m.client, m.venue, m.symbol)
        if isinstance(m, PositionChanged):
            if key in funding:
                funding[key] = (funding[key][0], ZERO)
        else:
            funding[key] = (m.funding, add(funding[key][1], m.amount) if key in funding else m.amount)
    return [(*key, so_far, paid) for key, (so_far, paid) in funding.items()]


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
        """In one transaction: insert each fill once, write each position as the last
        PositionChanged of a new fill left it, insert the closed round trips, book each funding payment once, insert the
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
        return await _while_unreachable("persisting", lambda: self._persist(fills, changes, moves, round_trips,
                                                                           equity, ts, state))

    async def _persist(self, fills: Sequence[OrderFilled], changes: Sequence[PositionChanged],
                       moves: Sequence[PositionChanged | FundingPaid], round_trips: Sequence[RoundTrip],
                       equity: Sequence[EquitySnapshot], ts: int, state: bytes | None) -> int:
        book = _book_fills_args(fills, changes, round_trips)
        async with self._pool.acquire() as conn:
            if len(moves) == len(changes) and not equity and state is None:  # fills only: the usual round
                return len(await conn.fetch(_BOOK_FILLS, *book))
            async with conn.transaction():
                new = {(r[0], r[1]) for r in await conn.fetch(_BOOK_FILLS, *book)}
                applied: list[PositionChanged | FundingPaid] = []
                for m in moves:
                    if isinstance(m, PositionChanged):
                        if (m.venue, m.fill_id) in new:
                            applied.append(m)
                    elif await conn.fetchval(_INSERT_FUNDING, m.client, m.venue, m.symbol, m.ts_event, m.qty,
                                             m.mark_price, m.rate, m.amount) is not None:
                        applied.append(m)
                if funded := _funding_rows(applied):
                    await conn.executemany(_FUND_POSITION, funded)
                if equity:
                    await conn.executemany(_INSERT_EQUITY, [
                        (e.client, e.ts_event, e.capital, e.realized_pnl, e.unrealized_pnl, e.fees, e.funding,
                         e.equity, e.gross_exposure, e.net_exposure, list(e.unmarked)) for e in equity])
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

    async def funding(self, client: str) -> list[tuple[Key, int, Decimal]]:
        """`client`'s funding payments ((client, venue, symbol), funding time, amount paid), by time."""
        rows = await self._pool.fetch("SELECT client, venue, symbol, funding_ts, amount FROM funding_payments "
                                      "WHERE client = $1 ORDER BY funding_ts, seq", client)
        return [((r["client"], r["venue"], r["symbol"]), r["funding_ts"], r["amount"]) for r in rows]

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
