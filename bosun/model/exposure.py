"""Whether a target position only reduces exposure: what a halted desk may still do."""

from __future__ import annotations

from decimal import Decimal


def reduces(target: Decimal, position: Decimal) -> bool:
    """Flat, or the same side as `position` and no larger: such a target only reduces exposure."""
    return target == 0 or (target * position > 0 and abs(target) <= abs(position))
