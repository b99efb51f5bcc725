"""`bosun audit [--since T] [--client C] [--kind K]`: the AUDIT stream as JSON lines, oldest first.

AUDIT holds every decision (the server copies TARGETS, RISK and ORDERS into it): targets, risk's
verdicts (TargetApproved with the target it approved, RiskLimitBreached with the limit and why,
`clamped` or `rejected`), trading state changes (scope, state, who, why; a breaker's trip names
it), and every order command and answer (the guard's refusals are OrderRejected `guard <rule>`).
One line per event: its stream sequence, time, subject, kind and the event itself."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import msgspec
from nats.js import api

from proto import codec
from proto import events as ev

STREAM = "AUDIT"
IDLE_S = 2.0  # no message for this long while the stream claims more: the reader stops, saying so
_RELATIVE = re.compile(r"^(\d+)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}

# --kind: an event's type name, or one of these words for a kind of verdict.
KINDS: dict[str, Callable[[ev.Event], bool]] = {
    "approve": lambda e: type(e) is ev.TargetApproved,
    "clamp": lambda e: type(e) is ev.RiskLimitBreached and e.action == "clamped",
    "reject": lambda e: type(e) is ev.RiskLimitBreached and e.action == "rejected",
    "state": lambda e: type(e) is ev.TradingStateChanged,
    "breaker": lambda e: type(e) is ev.TradingStateChanged and e.by.startswith("breaker"),
    "guard": lambda e: type(e) is ev.RiskLimitBreached and e.limit.startswith("guard."),
}


def since_time(text: str, now: datetime | None = None) -> datetime:
    """`2026-12-06T03:00:00Z` (ISO 8601, UTC when no zone is given) or a span back from now: 30s, 15m, 2h, 1d."""
    now = now or datetime.now(timezone.utc)
    match = _RELATIVE.match(text.strip())
    if match:
        return datetime.fromtimestamp(now.timestamp() - int(match[1]) * _UNIT_S[match[2]], timezone.utc)
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"--since {text!r}: give an ISO 8601 time (2026-12-06T03:00:00Z) or a span (30s, 15m, 2h, "
                         f"1d)") from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def kind_filter(kind: str | None) -> Callable[[ev.Event], bool]:
    if kind is None:
        return lambda _: True
    if kind.lower() in KINDS:
        return KINDS[kind.lower()]
    names = {t.__name__.lower(): t for t in ev.ANY_EVENT.__args__}  # type: ignore[attr-defined]
    if kind.lower() not in names:
        raise ValueError(f"--kind {kind!r}: give one of {', '.join(KINDS)} or an event type "
                         f"({', '.join(sorted(t.__name__ for t in names.values()))})")
    wanted = names[kind.lower()]
    return lambda e: type(e) is wanted


def client_of(event: ev.Event) -> str | None:
    if type(event) is ev.TargetApproved:
        return event.target.client
    if type(event) is ev.TradingStateChanged:
        return event.scope.split(".")[1] if event.scope != "global" else None
    return getattr(event, "client", None)


def line(seq: int, subject: str, event: ev.Event) -> str:
    when = datetime.fromtimestamp(event.ts_event / 1e9, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return json.dumps({"seq": seq, "time": when, "subject": subject, "kind": type(event).__name__,
                       "event": msgspec.to_builtins(event, enc_hook=str)}, separators=(",", ":"))


async def read(js, since: datetime | None, keep: Callable[[ev.Event], bool], out: Callable[[str], Any]) -> int:
    """Print what AUDIT holds from `since` (all when None) that `keep` keeps; returns how many."""
    info = await js.stream_info(STREAM)
    if not info.state.messages:
        return 0
    config = api.ConsumerConfig(opt_start_time=since.isoformat() if since else None)
    policy = api.DeliverPolicy.BY_START_TIME if since else api.DeliverPolicy.ALL
    sub = await js.subscribe(">", stream=STREAM, ordered_consumer=True, deliver_policy=policy, config=config)
    printed = 0
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=IDLE_S)
            except asyncio.TimeoutError:
                return printed  # nothing at or after `since`
            except Exception as exc:  # noqa: BLE001 - nats' own TimeoutError is not asyncio's in every version
                if "timeout" in type(exc).__name__.lower():
                    return printed
                raise
            try:
                event = codec.decode_any(msg.data)
            except (msgspec.DecodeError, ValueError) as exc:
                print(f"bosun audit: {msg.subject} seq {msg.metadata.sequence.stream}: cannot decode: {exc}",
                      file=sys.stderr)
            else:
                if keep(event):
                    out(line(msg.metadata.sequence.stream, msg.subject, event))
                    printed += 1
            if msg.metadata.num_pending == 0:
                return printed
    finally:
        await sub.unsubscribe()


def keep_for(client: str | None, kind: str | None) -> Callable[[ev.Event], bool]:
    by_kind = kind_filter(kind)
    if client is None:
        return by_kind
    return lambda e: client_of(e) == client and by_kind(e)
