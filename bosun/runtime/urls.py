"""Where a process finds NATS and PostgreSQL: the environment first, else the URLs that
`bosun up` recorded in its state dir (so `bosun status` in another terminal finds them)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from bosun.runtime.config import ConfigError

NATS_URL_ENV = "BOSUN_NATS_URL"
DATABASE_URL_ENV = "BOSUN_DATABASE_URL"
URLS_FILE = "urls.json"


def write_urls(state_dir: Path, *, nats_url: str, database_url: str) -> None:
    path = state_dir / URLS_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"nats_url": nats_url, "database_url": database_url, "pid": os.getpid()}))
    tmp.replace(path)


def urls_from_env_or_state(state_dir: Path) -> tuple[str | None, str | None]:
    recorded: dict[str, str] = {}
    try:
        recorded = json.loads((state_dir / URLS_FILE).read_text())
    except (OSError, ValueError):
        pass
    return (os.environ.get(NATS_URL_ENV) or recorded.get("nats_url"),
            os.environ.get(DATABASE_URL_ENV) or recorded.get("database_url"))


def require_urls(state_dir: Path, service: str | None = None) -> tuple[str, str | None]:
    """The NATS and PostgreSQL URLs, or a ConfigError telling how to get a NATS server.

    A service takes BOSUN_NATS_URL_<SERVICE> first: with one NATS user per service
    (infra/nats), each connects with its own credentials."""
    nats_url, database_url = urls_from_env_or_state(state_dir)
    if service is not None:
        nats_url = os.environ.get(f"{NATS_URL_ENV}_{service.upper()}") or nats_url
    if not nats_url:
        raise ConfigError(f"no NATS to talk to: set {NATS_URL_ENV}, or start `bosun up` "
                          f"(it records its URLs in {state_dir / URLS_FILE})")
    return nats_url, database_url


def nats_servers(url: str) -> list[str]:
    """`nats://a:4222,nats://b:4223`: a cluster's servers, each keeping the URL's credentials."""
    return [server.strip() for server in url.split(",") if server.strip()]


def status_subject(service: str) -> str:
    """The request subject a running service answers with its status as JSON."""
    return f"bosun.status.{service}"
