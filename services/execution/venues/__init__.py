"""Where orders go. A venue adapter takes execution's commands and reports what the venue
did with them as Order* events (accepted, rejected, modified, canceled, filled; a cancel-all may be
answered by OrdersCanceled, many cancels in one event), which
execution applies to its book like any other entry of the order log. `shadow` simulates a
venue against real market data (`ShadowAdapter`, fed by the market data itself); `live`
(ccxt) is the next adapter behind the same protocol."""

from __future__ import annotations

from typing import Protocol

from proto.events import CancelAllOrders, CancelOrder, ModifyOrder, SubmitOrder


class VenueAdapter(Protocol):
    """Commands in, Order* events out through the adapter's outbox. A handler may answer at
    once (a simulator) or later (an exchange round trip): execution never waits for it."""

    def on_submit_order(self, command: SubmitOrder) -> None: ...

    def on_cancel_order(self, command: CancelOrder) -> None: ...

    def on_modify_order(self, command: ModifyOrder) -> None: ...

    def on_cancel_all_orders(self, command: CancelAllOrders) -> None: ...
