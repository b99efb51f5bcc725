"""What execution's actors rebuild from the order log, as snapshot parts: the state a replay of
ORDERS up to a sequence leaves, so that a start reads it plus the log after that sequence
(bosun/runtime/replicas.py) instead of the whole log.

Exact: every Decimal travels as its string (exponent included), every de-duplication memory
whole and in its order, so an actor restored from a part and fed the rest of the log is in the
state a full replay leaves. Each part carries its version; one of another version, or taken
for other accounts than the configured ones, is refused (SnapshotError) before anything
changes, and that actor replays the whole log. Pure: no I/O."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import TypeVar

import msgspec

from bosun.model.recent import RecentIds
from bosun.runtime.actor import SnapshotError
from proto.events import (ANY_EVENT, CancelOrder, OrderAccepted, OrderCanceled, OrderFilled,
                          OrderModified, OrderRejected, OrdersCanceled, SubmitOrder)

VERSION = 2  # 2: the live part holds its brackets
Key = tuple[str, str, str]  # client, venue, symbol
Account = tuple[str, str]  # client, venue
# The entry kinds the book remembers as applied, one character each (a part names no Python class,
# and 100,000 (kind, id) pairs cost no tuple each to take).
KINDS = (SubmitOrder, OrderAccepted, OrderRejected, OrderModified, OrderCanceled, OrderFilled, OrdersCanceled)
_CODE = {kind: str(n) for n, kind in enumerate(KINDS)}


class BookState(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    """services/execution/orders.OrderBook."""

    open: list[tuple[SubmitOrder, Decimal]]  # in submit order, with what remains
    committed: list[tuple[Key, Decimal]]
    positions: list[tuple[Key, Decimal]]
    fills_by_client: list[tuple[str, int]]
    rejects_by_client: list[tuple[str, int]]
    applied_kinds: str  # the kind of each applied entry (a digit: its place in KINDS), oldest first
    applied: list[str]  # their ids, in the same order
    targets: list[str]  # oldest first


class ExecutionPart(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    version: int
    book: BookState
    tail: list[ANY_EVENT]  # the replay's newest entries, recorded again on start when durable


class WorkingState(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    order: SubmitOrder
    remaining: Decimal
    limit: Decimal | None  # on the tick grid as accepted (a replayed modify keeps it)
    fills: int


class VenueState(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One shadow venue (services/execution/venues/shadow.ShadowVenue) as its replay leaves it."""

    venue: str
    working: list[WorkingState]
    protective: list[WorkingState]  # by market in the order first seen, each in submit order
    positions: list[tuple[Key, Decimal]]
    fills: list[tuple[Key, list[tuple[int, Decimal]]]]  # the newest (time, signed qty) per market
    seen: list[str]
    booked: list[str]
    unanswered: list[SubmitOrder]
    cancels: list[CancelOrder]


class ShadowPart(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    version: int
    accounts: list[Account]  # sorted
    terms: bytes  # a digest of the accounts' configs: a replay works their orders out on the terms of now
    venues: list[VenueState]


class BracketsState(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    """services/execution/venues/live._Brackets: the legs, each OCO group's legs (by id) and the
    newest group of each market, all as the log left them."""

    legs: list[SubmitOrder]  # oldest first
    groups: list[tuple[str, list[str]]]
    newest: list[tuple[Key, str]]


class LivePart(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    version: int
    accounts: list[Account]  # sorted
    answered: list[str]
    fills: list[str]
    unanswered: list[SubmitOrder | CancelOrder]
    book: BookState | None  # capped live only
    brackets: BracketsState
    settled: list[str]  # OCO groups whose siblings were settled


_encoder = msgspec.msgpack.Encoder()
P = TypeVar("P", ExecutionPart, ShadowPart, LivePart)


def encode(part: ExecutionPart | ShadowPart | LivePart) -> bytes:
    return _encoder.encode(part)


def decode(data: bytes, kind: type[P], accounts: Iterable[Account] | None = None) -> P:
    """The part, or SnapshotError naming why it cannot be used (unreadable, another version,
    other accounts than `accounts`)."""
    try:
        version = msgspec.msgpack.decode(data, type=_Versioned).version
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise SnapshotError(f"{kind.__name__} unreadable: {exc}") from None
    if version != VERSION:
        raise SnapshotError(f"{kind.__name__} is of version {version}; this build reads version {VERSION}")
    try:
        part = msgspec.msgpack.decode(data, type=kind)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise SnapshotError(f"{kind.__name__} unreadable: {exc}") from None
    if accounts is not None:
        wanted = sorted(accounts)
        taken = [tuple(a) for a in part.accounts]  # type: ignore[union-attr]
        if taken != wanted:
            raise SnapshotError(f"taken for the accounts {_shown(taken)}, configured now: {_shown(wanted)}")
    return part


class _Versioned(msgspec.Struct):
    version: int


def terms(configs: Mapping[Account, msgspec.Struct]) -> bytes:
    """A digest of each account's config, in account order."""
    return hashlib.blake2b(_encoder.encode(sorted(configs.items())), digest_size=16).digest()


def _shown(accounts: list) -> str:
    return ", ".join(f"{c}.{v}" for c, v in accounts) or "none"


def ids(recent: RecentIds) -> list:
    return list(recent.oldest_first())


def applied_ids(recent: RecentIds) -> tuple[str, list[str]]:
    """The book's (kind, id) memory as (kinds, ids)."""
    code = _CODE
    return "".join([code[kind] for kind, _ in recent.oldest_first()]), [id_ for _, id_ in recent.oldest_first()]


def applied_from(kinds: str, ids: list[str], limit: int) -> RecentIds:
    if len(kinds) != len(ids):
        raise SnapshotError(f"the book remembers {len(kinds)} entry kinds for {len(ids)} ids")
    try:
        return RecentIds.of(zip([KINDS[int(c)] for c in kinds], ids), limit)
    except (IndexError, ValueError):
        raise SnapshotError(f"the book remembers an entry of unknown kind among {sorted(set(kinds))}") from None
