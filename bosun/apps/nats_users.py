"""NATS users scoped to one client: infra/nats/users.conf with a user per client added, each of
which may read only its own client's subjects and ask only its own portfolio endpoint.

A user `client_<id>` (password from `$BOSUN_NATS_CLIENT_<ID>_PASS`, inbox `_INBOX_client_<id>.>`) may:
- request `bosun.portfolio.client.<id>`: its positions, PnL, exposure and metrics;
- subscribe to its own targets, breaches, order events and positions as they happen;
- read them from their streams through a consumer whose filter is its own subjects (the server
  checks the filter in `$JS.API.CONSUMER.CREATE.<stream>.<name>.<filter>`; deliveries go to its
  inbox; with no acks to send, it can touch no other consumer).
It publishes nothing else: no event, no kill switch, no other client's endpoint."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from pathlib import Path

from bosun.runtime.service import inbox_prefix
from proto import subjects as sj

USERS_CONF = Path(__file__).resolve().parents[2] / "infra" / "nats" / "users.conf"
_END = "\n  ]\n}\n"  # how users.conf closes its list of users


def user_name(client: str) -> str:
    return f"client_{sj.check_token(client, 'client')}"


def password_env(client: str) -> str:
    """The environment variable the server reads the client user's password from."""
    return f"BOSUN_NATS_{user_name(client).upper().replace('-', '_')}_PASS"


def own_subjects(client: str) -> dict[str, str]:
    """Stream name -> the client's subjects in it."""
    return {"TARGETS": f"target.*.{client}.>", "RISK": f"risk.breach.{client}.>",
            "ORDERS": f"order.*.{client}.>", "POSITIONS": f"position.changed.{client}.>"}


def client_user(client: str) -> str:
    """The users.conf entry of one client's user."""
    user = user_name(client)
    own = own_subjects(client)
    publish = [sj.portfolio_client(client), *(f"$JS.API.CONSUMER.CREATE.{s}.*.{f}" for s, f in own.items())]
    subscribe = [f"{inbox_prefix(user)}.>", *own.values()]

    def allow(subjects: list[str]) -> str:
        return ",\n".join(f"          {json.dumps(s)}" for s in subjects)

    return (f"\n\n    # {user}: client {client}'s own subjects and portfolio endpoint, read only (bosun nats-users).\n"
            f"    {{\n      user: {user}, password: ${password_env(client)}\n"
            f"      permissions: {{\n"
            f"        publish: {{ allow: [\n{allow(publish)}\n        ] }}\n"
            f"        subscribe: {{ allow: [\n{allow(subscribe)}\n        ] }}\n"
            f"      }}\n    }}")


def with_clients(users_conf: str, clients: Iterable[str]) -> str:
    """`users_conf` with a user per client appended to its list of users."""
    if not users_conf.endswith(_END):
        raise ValueError("users.conf does not end with its list of users ('  ]' then '}'): cannot add client users")
    return users_conf[:-len(_END)] + "".join(client_user(c) for c in clients) + _END


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("nats-users", help="print infra/nats/users.conf with a read-only user per client",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--client", action="append", required=True, metavar="C", help="a client id; repeatable")
    p.add_argument("--users", type=Path, default=USERS_CONF, help="the users.conf to extend (default: infra's)")
    return p


def main(args: argparse.Namespace) -> int:
    try:
        sys.stdout.write(with_clients(args.users.read_text(), args.client))
    except (ValueError, OSError) as exc:
        print(f"bosun nats-users: {exc}", file=sys.stderr)
        return 2
    return 0
