"""Real service processes for end-to-end tests: `bosun run <service>` and `bosun up`,
started with the test's servers in their environment and stopped, always, at the end; and
what /proc tells of processes (who is below whom, which role each plays, waiting for any
process to exit)."""

from __future__ import annotations

import asyncio
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path

import nats
from nats.aio.client import Client
from nats.errors import NoRespondersError, TimeoutError as NatsTimeout

from bosun.runtime.embedded import EmbeddedNats, terminate
from tests.builders import fresh_price, publish

STOP_TIMEOUT_S = 15.0
UP_READY_TIMEOUT_S = 90.0
SERVICES = ("ingest", "signal", "risk", "execution", "portfolio", "alerts")


def bosun_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "bosun.apps.cli", *args]


def server_env(nats_url: str, database_url: str | None = None) -> dict[str, str]:
    env = {**os.environ, "BOSUN_NATS_URL": nats_url}
    if database_url:
        env["BOSUN_DATABASE_URL"] = database_url
    return env


class ServiceProcess:
    """`bosun run <service>` in a process of its own; `await started()` waits for its PING."""

    def __init__(self, service: str, config: Path, state_dir: Path, env: dict[str, str]) -> None:
        self.service = service
        self.log = state_dir / f"{service}.log"
        self._argv = bosun_argv("run", service, "--config", str(config), "--state-dir", str(state_dir))
        self._env = env
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self, nc: Client, timeout: float = 30.0) -> "ServiceProcess":
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self._argv, env=self._env, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.service} exited with {self.proc.returncode}:\n{self.log_text()}")
            try:
                await nc.request(f"$SRV.PING.bosun-{self.service}", b"", timeout=0.5)
                return self
            except (NoRespondersError, NatsTimeout):
                if time.monotonic() > deadline:
                    raise AssertionError(f"{self.service} did not answer PING in {timeout}s:\n{self.log_text()}")
                await asyncio.sleep(0.05)  # polling a start-up, not synchronising on an event

    async def logged(self, text: str, timeout: float = 20.0) -> None:
        """Until the service's log says `text` (its own word that a state was reached)."""
        deadline = time.monotonic() + timeout
        while text not in self.log_text(tail=None):
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.service} did not log {text!r} in {timeout}s:\n{self.log_text()}")
            await asyncio.sleep(0.05)  # polling a file: bounded by the deadline

    def log_text(self, tail: int | None = 4000) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return text if tail is None else text[-tail:]

    def stop(self) -> int | None:
        return None if self.proc is None else terminate(self.proc, timeout_s=STOP_TIMEOUT_S)


def wait_gone(pids: Iterable[int], timeout_s: float) -> list[int]:
    """Wait until every process in `pids` has exited (children or not: a pidfd tells), at most
    `timeout_s` in all; the pids still running then."""
    fds = {}
    for pid in pids:
        try:
            fds[os.pidfd_open(pid)] = pid
        except ProcessLookupError:
            pass  # gone already
    deadline = time.monotonic() + timeout_s
    try:
        while fds and (left := deadline - time.monotonic()) > 0:
            for fd in select.select(list(fds), [], [], left)[0]:
                os.close(fd)
                del fds[fd]
        return sorted(fds.values())
    finally:
        for fd in fds:
            os.close(fd)


def kill_9(pid: int, timeout_s: float = 30.0) -> None:
    """SIGKILL, and wait (bounded) until the process is gone."""
    os.kill(pid, signal.SIGKILL)
    assert wait_gone([pid], timeout_s) == [], f"pid {pid} still runs after SIGKILL"


def parent_of(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def descendants(pid: int) -> list[int]:
    """Every process below `pid`: its children, theirs, and so on."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        ppid = parent_of(int(entry.name))
        if ppid is not None:
            parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def role(pid: int) -> str | None:
    """`nats-server`, `postgres`, or the service a `bosun run <service>` child runs; None once gone
    (a zombie not yet reaped has an empty command line)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    if not argv[0]:
        return None
    if b"run" in argv:
        return argv[argv.index(b"run") + 1].decode()
    return Path(argv[0].decode()).name


class Up:
    """`bosun up --state-dir STATE ARGS...` with its own embedded servers (no URLs in its
    environment, `env` added), its output in a file beside the state dir."""

    def __init__(self, state_dir: Path, *args: str, env: dict[str, str] | None = None) -> None:
        environ = {k: v for k, v in os.environ.items() if k not in ("BOSUN_NATS_URL", "BOSUN_DATABASE_URL")}
        self.out = state_dir.parent / f"up-{os.urandom(4).hex()}.out"
        with open(self.out, "wb") as out:
            self.proc = subprocess.Popen(bosun_argv("up", "--state-dir", str(state_dir), *args),
                                         env=environ | (env or {}), stdout=out, stderr=out)

    def output(self) -> str:
        return self.out.read_text(errors="replace")

    def children(self) -> dict[str, int]:
        """The pid of each live child by its role."""
        found = {role(pid): pid for pid in descendants(self.proc.pid) if parent_of(pid) == self.proc.pid}
        return {name: pid for name, pid in found.items() if name is not None}

    def wait_ready(self, timeout_s: float = UP_READY_TIMEOUT_S) -> dict[str, int]:
        """Once every service runs: the pid of each child by its role."""
        deadline = time.monotonic() + timeout_s
        while "Ctrl-C stops everything" not in self.output():
            assert self.proc.poll() is None, f"bosun up exited with {self.proc.returncode}:\n{self.output()}"
            assert time.monotonic() < deadline, f"bosun up not ready in {timeout_s}s:\n{self.output()}"
            time.sleep(0.1)  # polling a start-up with a deadline, not synchronising on an event
        children = self.children()
        assert set(children) == {*SERVICES, "nats-server", "postgres"}, children
        return children

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> int:
        return terminate(self.proc, signal.SIGINT, timeout_s=timeout_s)


@asynccontextmanager
async def services_on_own_nats(tmp_path: Path, config_text: str, services: Iterable[str]
                               ) -> AsyncIterator[tuple[Client, dict[str, ServiceProcess], str, Path]]:
    """`services` as real processes on a nats-server of the test's own, with a fresh price in
    KV `prices`: the connection, the processes, the server's URL and the config file."""
    config = tmp_path / "bosun.toml"
    config.write_text(config_text)
    with EmbeddedNats(tmp_path / "nats") as server:
        nc = await nats.connect(server.url)
        processes = {s: ServiceProcess(s, config, tmp_path, server_env(server.url)) for s in services}
        try:
            for p in processes.values():
                await p.start(nc)
            await publish(nc, fresh_price())
            yield nc, processes, server.url, config
        finally:
            for p in processes.values():
                p.stop()
            await nc.close()
