"""nats-server started with infra/nats's configs as shipped (one user per service), alone or as
the 3-node loopback cluster of infra/nats/cluster, and how the tests reach it as a given user."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import nats
from nats.aio.client import Client

from bosun.runtime.embedded import _ChildServer, free_port, nats_server_binary
from bosun.runtime.service import inbox_prefix

T = TypeVar("T")

INFRA = Path(__file__).resolve().parents[1] / "infra" / "nats"
USERS = ("admin", "operator", "ingest", "signal", "risk", "execution", "portfolio", "alerts")


def new_passwords() -> dict[str, str]:
    return {user: f"p{secrets.token_hex(16)}" for user in USERS}


class SecuredNats(_ChildServer):
    """nats-server started with one of infra/nats's configs, passwords and store dir in its environment.
    bosun.conf is used as shipped, its ports given on the command line; a cluster node's config is
    rendered with free ports (`render_cluster`)."""

    log_name = "nats-server.log"
    ready_line = b"Server is ready"

    def __init__(self, state_dir: Path, passwords: dict[str, str], conf: Path = INFRA / "bosun.conf",
                 store_env: str = "BOSUN_NATS_STORE_DIR", port: int | None = None) -> None:
        super().__init__(state_dir, port)
        self.passwords, self.conf, self.store_env = passwords, conf, store_env

    def start(self) -> str:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, self.store_env: str(self.state_dir / "store"),
               **{f"BOSUN_NATS_{user.upper()}_PASS": pw for user, pw in self.passwords.items()}}

        def launch() -> subprocess.Popen[bytes]:
            ports = [] if self._fixed_port else ["-p", str(self.port), "-m", str(free_port())]
            with self.log_path.open("ab") as log:
                return self._spawn([str(nats_server_binary()), "-c", str(self.conf), *ports], log, env=env)

        self._start_on_free_port("nats-server", launch)
        return self.url("admin")

    def url(self, user: str, password: str | None = None) -> str:
        return f"nats://{user}:{password or self.passwords[user]}@127.0.0.1:{self.port}"


def render_cluster(dest: Path) -> list[tuple[Path, int]]:
    """cluster/node-*.conf with every loopback port (client, route, monitoring) mapped to a free one,
    and users.conf beside them as the include expects; returns (config, client port) per node."""
    ports: dict[int, int] = {}

    def free(match: re.Match[str]) -> str:
        return f"127.0.0.1:{ports.setdefault(int(match.group(1)), free_port())}"

    (dest / "cluster").mkdir(parents=True)
    shutil.copy(INFRA / "users.conf", dest / "users.conf")
    nodes = []
    for conf in sorted((INFRA / "cluster").glob("node-*.conf")):
        text = conf.read_text()
        client_port = int(re.search(r"^listen: 127\.0\.0\.1:(\d+)", text, re.M).group(1))  # type: ignore[union-attr]
        (dest / "cluster" / conf.name).write_text(re.sub(r"127\.0\.0\.1:(\d+)", free, text))
        nodes.append((dest / "cluster" / conf.name, ports[client_port]))
    return nodes


class Cluster:
    """The three nodes of infra/nats/cluster on free loopback ports, each with its store under
    `root`; a node keeps its ports and store across a stop (or kill) and a start."""

    def __init__(self, root: Path, passwords: dict[str, str] | None = None) -> None:
        self.passwords = passwords or new_passwords()
        self.nodes = [SecuredNats(root / conf.stem, self.passwords, conf, f"BOSUN_NATS_STORE_DIR_{n}", port)
                      for n, (conf, port) in enumerate(render_cluster(root / "infra"), 1)]

    def __enter__(self) -> "Cluster":
        try:
            for node in self.nodes:
                node.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def node(self, server_name: str) -> SecuredNats:
        """The node a server name (`bosun-2`, as JetStream names a stream's leader) belongs to."""
        for node in self.nodes:
            if f"server_name: {server_name}\n" in node.conf.read_text():
                return node
        raise AssertionError(f"no node of the cluster is named {server_name!r}")

    def urls(self, user: str) -> str:
        """Every node, as BOSUN_NATS_URL lists a cluster: comma-separated, each with the credentials."""
        return ",".join(node.url(user) for node in self.nodes)


class Errors:
    """A client's error callback: what the server refused, awaitable."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self._arrived = asyncio.Event()

    async def on_error(self, exc: Exception) -> None:
        self.seen.append(str(exc))
        self._arrived.set()

    async def refused(self, subject: str, times: int = 1, timeout: float = 5.0) -> None:
        """Wait until the server has refused `times` publishes to `subject` (nats-py lower-cases the error)."""
        expected = f'permissions violation for publish to "{subject}"'.lower()
        deadline = time.monotonic() + timeout
        while sum(expected in e.lower() for e in self.seen) < times:
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), max(deadline - time.monotonic(), 0))
            except TimeoutError:
                raise AssertionError(f"not {times} x {expected!r} within {timeout}s; errors: {self.seen}") from None


async def connect(servers: SecuredNats | list[SecuredNats], user: str, errors: Errors | None = None,
                  reconnect: bool = False) -> Client:
    """As `user`; with `reconnect`, to whichever node is up, as a service does on a cluster."""
    # A service user may only use its own inbox space, as bosun.runtime.service connects.
    prefix = inbox_prefix(user) if user not in ("admin", "operator") else "_INBOX"
    urls = [s.url(user) for s in (servers if isinstance(servers, list) else [servers])]
    options = {"max_reconnect_attempts": -1, "reconnect_time_wait": 0.1} if reconnect else {"allow_reconnect": False}
    return await nats.connect(urls, name=f"test-{user}", inbox_prefix=prefix,
                              error_cb=(errors or Errors()).on_error, **options)


async def retried(attempt: Callable[[], Awaitable[T]], retry_on: type[Exception] | tuple[type[Exception], ...],
                  what: str, timeout: float = 20.0) -> T:
    """`attempt()` again while it fails with `retry_on` (a cluster still settling), up to `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await attempt()
        except retry_on as exc:
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} within {timeout}s: {exc!r}") from None
            await asyncio.sleep(0.1)  # polling the cluster, bounded by the deadline
