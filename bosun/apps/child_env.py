"""The environment of each service `bosun up` starts: an allow-list, so that a secret set for
one service reaches no other (a child inherits nothing else of ours).

Every service sees the plain variables (bosun.runtime.environment) and the settings of
Python (PYTHON*), OpenTelemetry (OTEL_*) and bosun (BOSUN_*) unless a name looks like a secret.
Secrets go only where they are used: venue credentials (services/execution/credentials.py)
to execution, the webhook URLs the config names to alerts, BOSUN_NATS_URL_<SERVICE> (it may
carry that service's NATS password) to its service, the PostgreSQL URL to portfolio and to
execution (its intents)."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping

from bosun.runtime.environment import plain_env
from bosun.runtime.urls import DATABASE_URL_ENV, NATS_URL_ENV
from services.execution.credentials import is_venue_credential

_SHARED_PREFIXES = ("PYTHON", "OTEL_", "BOSUN_")
_SECRET_LOOKING = re.compile(r".*_(KEY|SECRET|PASS|PASSWORD|PASSPHRASE|TOKEN|CREDENTIALS|WEBHOOK)")
DATABASE_USERS = frozenset({"portfolio", "execution"})


def service_env(service: str, environ: Mapping[str, str], *, nats_url: str, database_url: str,
                webhook_envs: Collection[str]) -> dict[str, str]:
    own_nats_url = f"{NATS_URL_ENV}_{service.upper()}"
    env = plain_env(environ)
    for name, value in environ.items():
        if name == own_nats_url or (service == "execution" and is_venue_credential(name)) \
                or (service == "alerts" and name in webhook_envs):
            env[name] = value
        elif name.startswith(_SHARED_PREFIXES) and not name.startswith(NATS_URL_ENV) and name != DATABASE_URL_ENV \
                and name not in webhook_envs and not _SECRET_LOOKING.fullmatch(name):
            env[name] = value
    env[NATS_URL_ENV] = nats_url
    if service in DATABASE_USERS:
        env[DATABASE_URL_ENV] = database_url
    return env
