"""Invariants that every event on the wire keeps."""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator
from decimal import Decimal

from proto import events as ev

ATOMS = (str, int, float, bool, bytes, Decimal, type(None))


def _events(cls: type = ev.Event) -> Iterator[type]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _events(sub)


def _holds_no_container(hint: object) -> bool:
    if hint in ATOMS or (isinstance(hint, type) and issubclass(hint, ev.Event)):
        return True
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        return True
    if origin in (typing.Union, types.UnionType):
        return all(map(_holds_no_container, typing.get_args(hint)))
    if origin is tuple:  # immutable: a tuple of atoms can never close a cycle
        return all(map(_holds_no_container, (a for a in typing.get_args(hint) if a is not Ellipsis)))
    return False


def test_events_hold_no_containers_so_the_cycle_collector_may_skip_them() -> None:
    # Event is declared gc=False: only an event holding a list, dict or the like could ever be part of
    # a reference cycle, which the collector would then never free.
    kinds = list(_events())
    assert ev.Bar in kinds and ev.TargetApproved in kinds
    for kind in kinds:
        hints = typing.get_type_hints(kind, vars(ev))
        for field in kind.__struct_fields__:
            assert _holds_no_container(hints[field]), f"{kind.__name__}.{field} is {hints[field]}: a container"
