"""What execution asks its store to keep (effects, carried out by the process's edge before the
message that caused them is acked), and what the store hands back on start. Pure: the edge
(services/execution/store.py) does the writing; a backtest asks for none of it."""

from __future__ import annotations

from decimal import Decimal
from typing import NamedTuple

import msgspec

from bosun.runtime.actor import Effect
from proto.events import (OrderAccepted, OrderCanceled, OrderFilled, OrderModified, OrderRejected, SubmitOrder,
                          TargetPosition)

Key = tuple[str, str, str]  # client, venue, symbol
BookEntry = SubmitOrder | OrderAccepted | OrderRejected | OrderModified | OrderCanceled | OrderFilled


class Protection(NamedTuple):
    """A position's stop-loss / take-profit levels and the target that set them."""

    target_id: str
    stop_loss: Decimal | None
    take_profit: Decimal | None


class RecordIntent(msgspec.Struct, Effect, frozen=True):
    """An approved target acted on; `protection` is its position's levels from now on (None: none)."""

    target: TargetPosition
    protection: Protection | None


class RecordOrderEntry(msgspec.Struct, Effect, frozen=True):
    """An entry the book applied: the order's `remaining` after it (None: no longer open) and the
    position of its market after it."""

    entry: BookEntry
    remaining: Decimal | None
    position: Decimal


class Snapshot(NamedTuple):
    """What a restart reads from the store: each position's levels and its newest recorded fill."""

    protection: dict[Key, Protection]
    last_fills: dict[Key, tuple[str, int]]  # fill id, its ts_event (ns)
