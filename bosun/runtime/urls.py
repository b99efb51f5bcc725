"""Where a process finds NATS and PostgreSQL: the environment first, else the URLs that
`bosun up` recorded in its state dir (so `bosun status` in another terminal finds them)."""

from __future__ import annotations

import json
import os
from pathlib import Path

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


def status_subject(service: str) -> str:
    """The request subject a running service answers with its status as JSON."""
    return f"bosun.status.{service}"
