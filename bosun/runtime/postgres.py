"""What every PostgreSQL store of the platform stands on (asyncpg): numbered migrations applied
once under an advisory lock, and a bounded wait while the server cannot be reached.

Migrations are the numbered files in `infra/postgres` of the source tree (found from this
file: bosun/runtime/postgres.py -> ../../infra/postgres); each service owns its schema in them
(portfolio: public, execution: `execution`). An installed (non-editable) package does not carry
them: pass `migrate(pool, directory=...)` there."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "infra" / "postgres"
# pg_advisory_lock key shared by every process that migrates this database (any constant
# bigint; this one spells "bosunmig" in ASCII).
MIGRATION_LOCK = 0x626F73756E6D6967

log = logging.getLogger(__name__)

# A PostgreSQL restart (seconds) is waited out, not crashed on: a crash leaves the input unacked,
# redelivered only after the consumer's ack wait, behind the inputs that came after it.
UNREACHABLE_WAIT_S = 60.0
_RETRY_S = 0.5
_UNREACHABLE = (OSError, asyncpg.CannotConnectNowError, asyncpg.ConnectionDoesNotExistError,
                asyncpg.AdminShutdownError, asyncpg.InterfaceError)


class MigrationError(RuntimeError):
    pass


async def while_unreachable(who: str, what: str, op: Callable[[], Awaitable[Any]]) -> Any:
    """`op()`, tried again while the server cannot be reached, for UNREACHABLE_WAIT_S at most."""
    deadline = time.monotonic() + UNREACHABLE_WAIT_S
    while True:
        try:
            return await op()
        except _UNREACHABLE as exc:
            if time.monotonic() > deadline:
                raise
            log.warning("%s: PostgreSQL unreachable (%s: %s); %s again in %.1fs",
                        who, type(exc).__name__, exc, what, _RETRY_S)
            await asyncio.sleep(_RETRY_S)


async def connect(who: str, url: str, *, max_size: int = 4, command_timeout_s: float = 30.0) -> asyncpg.Pool:
    return await while_unreachable(who, "connecting", lambda: asyncpg.create_pool(
        url, min_size=1, max_size=max_size, command_timeout=command_timeout_s))


async def migrate(pool: asyncpg.Pool, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply the `*.sql` files of `directory` not yet applied, in name order, each in
    its own transaction; returns the names applied. Concurrent callers queue on an
    advisory lock, so each file runs once. An applied file that has since changed is
    refused (add a new numbered file instead)."""
    files = sorted(directory.glob("*.sql"))
    if not files:
        raise MigrationError(f"no migrations (*.sql) in {directory}: outside the source tree, "
                             f"pass migrate(directory=...)")
    applied: list[str] = []
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
        try:
            await conn.execute("""CREATE TABLE IF NOT EXISTS schema_migrations (
                name text PRIMARY KEY, sha256 text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())""")
            done = {r["name"]: r["sha256"] for r in await conn.fetch("SELECT name, sha256 FROM schema_migrations")}
            for path in files:
                sql = path.read_text()
                digest = hashlib.sha256(sql.encode()).hexdigest()
                if path.name in done:
                    if done[path.name] != digest:
                        raise MigrationError(f"{path}: changed after it was applied (sha256 {digest} != "
                                             f"{done[path.name]}); add a new numbered migration instead")
                    continue
                async with conn.transaction():
                    try:
                        await conn.execute(sql)
                    except asyncpg.PostgresError as exc:
                        raise MigrationError(f"{path}: {type(exc).__name__}: {exc}") from exc
                    await conn.execute("INSERT INTO schema_migrations (name, sha256) VALUES ($1, $2)",
                                       path.name, digest)
                applied.append(path.name)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
    return applied
