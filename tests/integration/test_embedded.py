"""The embedded servers: real processes, real data dirs, nothing left running after stop()."""

from __future__ import annotations

import os
from pathlib import Path

import asyncpg
import nats
import pytest

from bosun.runtime.embedded import EmbeddedNats, EmbeddedPostgres, free_port

pytestmark = pytest.mark.integration


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited; only its exit status is left


def _children(pid: int) -> list[int]:
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            ppid = next(line for line in status.read_text().splitlines() if line.startswith("PPid:"))
        except (OSError, StopIteration):
            continue
        if int(ppid.split()[1]) == pid:
            found.append(int(status.parent.name))
    return found


def test_free_port_is_loopback_and_not_the_defaults() -> None:
    port = free_port()
    assert 1024 < port < 65536 and port not in (4222, 5432)


async def test_postgres_serves_asyncpg_keeps_data_and_stops_without_a_trace(tmp_path: Path) -> None:
    server = EmbeddedPostgres(tmp_path)
    url = server.start()
    try:
        assert url.startswith("postgresql://postgres@127.0.0.1:") and url.endswith("/bosun")
        assert server.port != 5432
        conn = await asyncpg.connect(url)
        assert await conn.fetchval("SELECT current_database()") == "bosun"
        await conn.execute("CREATE TABLE kept (v text); INSERT INTO kept VALUES ('still here')")
        await conn.close()
        pid = server.pid
        assert pid is not None and _alive(pid) and _children(pid)  # postmaster + its workers
    finally:
        server.stop()
    assert not _alive(pid) and not _children(pid)

    with EmbeddedPostgres(tmp_path) as again:  # the same state dir: the data is reused
        conn = await asyncpg.connect(again.url)
        assert await conn.fetchval("SELECT v FROM kept") == "still here"
        await conn.close()
        pid = again.pid
    assert pid is not None and not _alive(pid)


async def test_nats_keeps_jetstream_data_across_restarts_and_stops(tmp_path: Path) -> None:
    with EmbeddedNats(tmp_path) as server:
        assert server.port != 4222 and server.url == f"nats://127.0.0.1:{server.port}"
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        await js.add_stream(name="KEEP", subjects=["keep.>"])
        await js.publish("keep.one", b"payload")
        await nc.close()
        pid = server.pid
    assert pid is not None and not _alive(pid)

    with EmbeddedNats(tmp_path) as server:
        nc = await nats.connect(server.url)
        msg = await nc.jetstream().get_last_msg("KEEP", "keep.one")
        assert msg.data == b"payload"
        await nc.close()


def test_nats_start_failure_names_the_problem(tmp_path: Path) -> None:
    with EmbeddedNats(tmp_path / "a") as first:
        clash = EmbeddedNats(tmp_path / "b", port=first.port)  # a fixed port that is taken
        try:
            with pytest.raises(RuntimeError, match=r"nats-server exited at start .*log"):
                clash.start()
        finally:
            clash.stop()
    assert os.path.exists(tmp_path / "b" / "nats-server.log")
