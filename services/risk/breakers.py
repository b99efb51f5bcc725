"""Circuit breakers: conditions that stop trading in a scope by themselves. Each is off unless
the client's config sets it (services/risk/config.py); a trip is a `Trip` the actor turns into
the scope's HALTED state in KV `control`, which execution answers by cancelling the scope's
orders and which stays until a person resumes the scope.

- stale_price: the newest price of a market the client holds a position in or has targeted
  (checked on each tick and each target) is older than `stale_price_ms`: its market scope;
- errors: more than `max_errors` order rejects of the client in `errors_window_s`: its client scope;
- ack_latency: an order of the client its venue has not answered (accepted, rejected, filled)
  within `max_ack_latency_ms`, seen on the answer or, when none comes, on a tick: its market scope;
- unknown_order: reconciliation cancelled an order on the venue that no intent explains: its
  market scope (`halt_on_unknown_order`);
- market_halted: a venue reports a market halted: that market scope of every client that sets
  `halt_on_market_halt`.

Only what happens after the start counts (the order log's replay does not trip anything: a
trip is already stored in KV). Time is the injected clock's."""

from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

import msgspec

from bosun.model.order_rules import DRY_RUN, UNEXPLAINED, RateWindow
from bosun.model.trading import client_scope, market_scope
from proto.events import (CancelOrder, Event, MarketHalted, OrderAccepted, OrderFilled, OrderRejected, PriceSnapshot,
                          SubmitOrder)
from services.risk.config import LimitsConfig

NS_PER_MS = 1_000_000
MAX_PENDING = 10_000  # orders awaiting their venue's answer, per process; past it the oldest is forgotten
MAX_WATCHED = 10_000  # markets targeted whose prices the stale_price breaker watches; past it, the oldest


class Trip(NamedTuple):
    scope: str
    breaker: str
    detail: str


class _Settings(msgspec.Struct, frozen=True):
    stale_ns: int | None
    max_errors: int | None
    errors_window_s: int
    ack_ns: int | None
    unknown_order: bool
    market_halt: bool


class Breakers:
    def __init__(self, configs: dict[str, LimitsConfig]) -> None:
        """`configs`: each client's resolved limits (LimitsConfig.over)."""
        self._settings = {client: _Settings(
            c.stale_price_ms * NS_PER_MS if c.stale_price_ms else None, c.max_errors,
            max(1, round(c.errors_window_s or 60)), c.max_ack_latency_ms * NS_PER_MS if c.max_ack_latency_ms else None,
            bool(c.halt_on_unknown_order), bool(c.halt_on_market_halt)) for client, c in configs.items()}
        # A reject that finds the window full (max_errors in it already) is one too many.
        self._errors = {client: RateWindow(s.max_errors, s.errors_window_s)
                        for client, s in self._settings.items() if s.max_errors is not None}
        self._stale = {client: s.stale_ns for client, s in self._settings.items() if s.stale_ns is not None}
        self._ack = {client: s.ack_ns for client, s in self._settings.items() if s.ack_ns is not None}
        self._pending: OrderedDict[tuple[str, str], tuple[int, str, str]] = OrderedDict()  # -> (seen, venue, symbol)
        self._targeted: dict[tuple[str, str, str], None] = {}  # (client, venue, symbol), oldest first
        self.live = False  # set once the order log has been replayed

    @property
    def reads_orders(self) -> bool:
        return bool(self._errors or self._ack
                    or any(s.unknown_order or s.market_halt for s in self._settings.values()))

    @property
    def reads_prices(self) -> bool:
        return bool(self._stale)

    @property
    def ticks(self) -> bool:
        """Whether anything here needs the clock to tick (a price that stops, an answer that never comes)."""
        return bool(self._stale or self._ack)

    def stale_ns(self, client: str) -> int | None:
        return self._stale.get(client)

    def describe(self) -> dict[str, dict[str, str]]:
        """Each client's breakers as configured, for status."""
        out: dict[str, dict[str, str]] = {}
        for client, s in sorted(self._settings.items()):
            each = {}
            if s.stale_ns is not None:
                each["stale_price"] = f"a price older than {s.stale_ns // NS_PER_MS} ms"
            if s.max_errors is not None:
                each["errors"] = f"more than {s.max_errors} order rejects in {s.errors_window_s} s"
            if s.ack_ns is not None:
                each["ack_latency"] = f"an order unanswered for more than {s.ack_ns // NS_PER_MS} ms"
            if s.unknown_order:
                each["unknown_order"] = "an order on a venue that no intent explains"
            if s.market_halt:
                each["market_halted"] = "a market its venue reports halted"
            if each:
                out[client] = each
        return out

    # --- checks

    def stale_price(self, client: str, snapshot: PriceSnapshot | None, venue: str, symbol: str,
                    now_ns: int) -> Trip | None:
        """Checked on each target of `client` (whose market is then watched on each tick)."""
        limit = self._stale.get(client)
        if limit is None:
            return None
        key = (client, venue, symbol)
        if key not in self._targeted:
            if len(self._targeted) >= MAX_WATCHED:
                del self._targeted[next(iter(self._targeted))]
            self._targeted[key] = None
        return self._stale_trip(client, snapshot, venue, symbol, now_ns)

    def _stale_trip(self, client: str, snapshot: PriceSnapshot | None, venue: str, symbol: str,
                    now_ns: int) -> Trip | None:
        limit = self._stale.get(client)
        if limit is None or snapshot is None or now_ns - snapshot.ts_event <= limit:
            return None
        return Trip(market_scope(client, venue, symbol), "stale_price",
                    f"the newest price of {symbol} on {venue} ({snapshot.price}) is "
                    f"{(now_ns - snapshot.ts_event) // NS_PER_MS} ms old; the limit is {limit // NS_PER_MS} ms")

    def on_tick(self, now_ns: int, held: list[tuple[str, str, str]],
                prices: dict[tuple[str, str], PriceSnapshot]) -> list[Trip]:
        """`held`: (client, venue, symbol) of the open positions."""
        watched = dict.fromkeys(held) | self._targeted
        trips = [trip for client, venue, symbol in watched
                 if (trip := self._stale_trip(client, prices.get((venue, symbol)), venue, symbol, now_ns))]
        for (client, coid), (seen, venue, symbol) in list(self._pending.items()):
            if now_ns - seen > self._ack[client]:
                del self._pending[(client, coid)]
                trips.append(self._slow(client, coid, venue, symbol, now_ns - seen, "no answer yet"))
        return trips

    def on_order_event(self, event: Event, now_ns: int) -> Trip | None:
        if not self.live:
            return None
        kind = type(event)
        if kind is SubmitOrder:
            if event.client in self._ack:  # type: ignore[attr-defined]
                if len(self._pending) >= MAX_PENDING:
                    self._pending.popitem(last=False)
                self._pending[(event.client, event.id)] = (now_ns, event.venue, event.symbol)  # type: ignore[attr-defined]
            return None
        if kind is OrderAccepted or kind is OrderRejected or kind is OrderFilled:
            trip = self._answered(event, now_ns)  # type: ignore[arg-type]
            if kind is OrderRejected:
                return self._rejected(event, now_ns) or trip  # type: ignore[arg-type]
            return trip
        if kind is CancelOrder and event.reason == UNEXPLAINED:  # type: ignore[attr-defined]
            s = self._settings.get(event.client)  # type: ignore[attr-defined]
            if s is not None and s.unknown_order:
                return Trip(market_scope(event.client, event.venue, event.symbol), "unknown_order",  # type: ignore[attr-defined]
                            f"order {event.client_order_id} on {event.venue} is one no intent explains; "  # type: ignore[attr-defined]
                            f"reconciliation cancels it")
        return None

    def on_market_halted(self, halted: MarketHalted) -> list[Trip]:
        if not self.live:
            return []
        return [Trip(market_scope(client, halted.venue, halted.symbol), "market_halted",
                     f"{halted.venue} reports {halted.symbol} halted: {halted.reason}")
                for client, s in sorted(self._settings.items()) if s.market_halt]

    def _answered(self, event: OrderAccepted | OrderRejected | OrderFilled, now_ns: int) -> Trip | None:
        if not self._pending:
            return None
        answered = self._pending.pop((event.client, event.client_order_id), None)
        if answered is None:
            return None
        seen, venue, symbol = answered
        if now_ns - seen <= self._ack[event.client]:
            return None
        return self._slow(event.client, event.client_order_id, venue, symbol, now_ns - seen, "answered")

    def _slow(self, client: str, coid: str, venue: str, symbol: str, waited_ns: int, how: str) -> Trip:
        return Trip(market_scope(client, venue, symbol), "ack_latency",
                    f"order {coid} on {venue} {symbol}: {how} after {waited_ns // NS_PER_MS} ms; the limit is "
                    f"{self._ack[client] // NS_PER_MS} ms")

    def _rejected(self, rejected: OrderRejected, now_ns: int) -> Trip | None:
        window = self._errors.get(rejected.client)
        if window is None or rejected.reason == DRY_RUN:
            return None
        full = window.full(now_ns)
        window.add(now_ns)
        if not full:
            return None
        s = self._settings[rejected.client]
        return Trip(client_scope(rejected.client), "errors",
                    f"more than {s.max_errors} order rejects in {s.errors_window_s} s; the last: "
                    f"{rejected.client_order_id} on {rejected.venue} {rejected.symbol}: {rejected.reason}")
