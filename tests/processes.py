"""Real service processes for end-to-end tests: `bosun run <service>` and `bosun up`,
started with the test's servers in their environment and stopped, always, at the end; and
what /proc tells of processes (who is below whom, waiting for any process to exit)."""

from __future__ import annotations

import asyncio
import os
import select
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

from nats.aio.client import Client
from nats.errors import NoRespondersError, TimeoutError as NatsTimeout

from bosun.runtime.embedded import terminate

STOP_TIMEOUT_S = 15.0


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

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""

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
