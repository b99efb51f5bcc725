"""The embedded servers: real processes, real data dirs, nothing left running after stop()."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import nats
import pytest

from bosun.runtime.embedded import EmbeddedNats, EmbeddedPostgres, EmbeddedServerError, free_port
from bosun.runtime.pidfiles import command_of
from tests.processes import descendants, wait_gone

pytestmark = pytest.mark.integration


def _alive(pid: int) -> bool:
    return command_of(pid) is not None  # a zombie has exited: only its exit status is left


def test_free_port_is_loopback_and_not_the_defaults() -> None:
    port = free_port()
    assert 1024 < port < 65536 and port not in (4222, 5432)


async def test_postgres_serves_asyncpg_keeps_data_and_stops_without_a_trace(searchable_tmp_path: Path) -> None:
    tmp_path = searchable_tmp_path
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
        assert pid is not None and _alive(pid) and descendants(pid)  # postmaster + its workers
        with pytest.raises(EmbeddedServerError, match=rf"postgres pid {pid} still runs on {tmp_path / 'pg'}"):
            EmbeddedPostgres(tmp_path).start()
    finally:
        server.stop()
    assert not _alive(pid) and not descendants(pid)

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


def test_a_second_nats_server_on_the_same_store_is_refused(tmp_path: Path) -> None:
    with EmbeddedNats(tmp_path) as first:
        with pytest.raises(EmbeddedServerError, match=rf"nats-server pid {first.pid} still runs on {tmp_path / 'nats'}"):
            EmbeddedNats(tmp_path).start()
    # a pid file naming a live process that is no nats-server (a reused pid) is stale: taken over
    (tmp_path / EmbeddedNats.pid_name).write_text(f"{os.getpid()}\n")
    with EmbeddedNats(tmp_path) as second:
        assert (tmp_path / EmbeddedNats.pid_name).read_text().split()[0] == str(second.pid)


def test_a_server_dies_with_the_process_that_started_it(tmp_path: Path) -> None:
    parent = subprocess.Popen([sys.executable, "-c", f"""
import sys
from bosun.runtime.pidfiles import command_of
from bosun.runtime.embedded import EmbeddedNats
server = EmbeddedNats({str(tmp_path)!r})
server.start()
print(server.pid, flush=True)
sys.stdin.read()  # until killed
"""], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        server_pid = int(parent.stdout.readline())
        assert _alive(server_pid)
        parent.kill()  # SIGKILL: no clean-up of the parent's runs
        parent.wait(10)
        assert wait_gone([server_pid], timeout_s=10) == []
    finally:
        parent.kill()
        parent.wait()


@pytest.mark.skipif(os.geteuid() != 0, reason="as root only: postgres then runs as another user")
def test_as_root_postgres_under_a_private_dir_is_refused_and_no_mode_changes(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    private.chmod(0o700)  # whatever the umask
    with pytest.raises(EmbeddedServerError) as refused:
        EmbeddedPostgres(private / "state").start()
    assert f"{private} (mode 0700, owner root) lacks x" in str(refused.value)
    assert "chmod o+x" in str(refused.value)
    assert private.stat().st_mode & 0o777 == 0o700
