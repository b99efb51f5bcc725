"""Session servers for integration tests: an embedded nats-server (JetStream, provisioned
with proto/streams.py) and an embedded PostgreSQL, each started once on a free loopback
port and stopped at the end. With BOSUN_TESTCONTAINERS=1 and a reachable Docker engine,
nats:2.11 and postgres:16 containers are used instead."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import nats
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext

from bosun.runtime.embedded import EmbeddedNats, EmbeddedPostgres
from bosun.runtime.provision import provision


def _use_testcontainers() -> bool:
    if os.environ.get("BOSUN_TESTCONTAINERS") != "1":
        return False
    try:
        import docker

        docker.from_env().ping()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def _nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if _use_testcontainers():
        from testcontainers.community.nats import NatsContainer

        with NatsContainer("nats:2.11", jetstream=True) as container:
            yield container.nats_uri()
        return
    with EmbeddedNats(tmp_path_factory.mktemp("nats")) as server:
        yield server.url


@pytest.fixture(scope="session")
async def nats_url(_nats_server: str) -> str:
    """A JetStream server with every stream and KV bucket of proto/streams.py."""
    nc = await nats.connect(_nats_server)
    try:
        await provision(nc.jetstream())
    finally:
        await nc.close()
    return _nats_server


@contextmanager
def searchable_dir() -> Iterator[Path]:
    """A fresh dir others may search (0755), removed after: as root, embedded PostgreSQL runs as
    another user, who must reach its data, and pytest's own temp dirs are private (0700)."""
    path = Path(tempfile.mkdtemp(prefix="bosun-test-"))
    try:
        path.chmod(0o755)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def searchable_tmp_path() -> Iterator[Path]:
    with searchable_dir() as path:
        yield path


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """The session server's `bosun` database (shared: prefer `fresh_database_url`)."""
    if _use_testcontainers():
        from testcontainers.community.postgres import PostgresContainer

        with PostgresContainer("postgres:16", dbname="bosun", driver=None) as container:
            yield container.get_connection_url()
        return
    with searchable_dir() as state_dir, EmbeddedPostgres(state_dir) as server:
        yield server.url


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture
async def fresh_database_url(database_url: str) -> AsyncIterator[str]:
    """A new, empty database on the session server, dropped after the test."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(database_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield with_database(database_url, name)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[Client]:
    client = await nats.connect(nats_url)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
def js(nc: Client) -> JetStreamContext:
    return nc.jetstream()
