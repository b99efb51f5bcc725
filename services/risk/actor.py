"""The risk service's logic: every proposed target gets exactly one verdict, TargetApproved
or RiskLimitBreached, with an id derived from the target's id (a replayed target yields
the same verdict id, so downstream de-duplication drops it).

Trading starts in an unknown state, treated as disabled, until the kill-switch key is read:
the first value read (false too, after a restart) publishes TradingStateChanged. A target whose
numbers no event may carry (NaN, infinite, past proto.amounts' sanity caps) is refused as
`invalid_target`; a negative zero is a flat target. A target that only reduces exposure meets
only the limits that guard reductions too (the order rates, a loss limit that halts); others meet
all the client's limits in order (services/risk/limits.py), and the first breach is the verdict.
With `on_breach = "clamp"` a size cap cuts the target to what fits instead: the approval carries
the cut size, and a RiskLimitBreached with action "clamped" says which cap cut it.

Trading states per scope (bosun.model.trading) come from KV `control`: a client's own switch
and each scope's state; a target that adds exposure in a scope not ACTIVE is refused as
`trading_state`. Circuit breakers (services/risk/breakers.py) halt a scope by writing its state
to KV, so that the trip outlives a restart; `on_tick`, fed by the process's clock, lets them see
what stops coming. Every change of a scope is a TradingStateChanged.

State, each read only when some client's limit needs it: positions are the signed sum of fills;
prices are the newest per market; open orders come from the order events; equity per client
(for the loss limits) is its capital plus the realized and unrealized pnl of the newest
PositionChanged per market, re-marked at each newer price (bosun.model.equity)."""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import msgspec

from bosun.model.equity import marked_equity
from bosun.model.exposure import reduces
from bosun.model.positions import NetPositions
from bosun.model.prices import LatestPrices
from bosun.model.recent import RecentIds
from bosun.model.trading import (ACTIVE, GLOBAL, HALTED, REDUCING, ScopeStates, State, client_scope, market_scope,
                                 scope_change, scope_client, shown, state_value, switch_change)
from bosun.runtime.actor import Actor, Delivery, Input, KvEntry, Outbox, event_input, kv_input
from bosun.runtime.clock import Clock
from proto import codec
from proto import subjects as sj
from proto.amounts import AmountError, check
from proto.events import (MarketHalted, OrderAccepted, OrderCanceled, OrderFilled, OrderRejected, OrdersCanceled,
                          PositionChanged, PriceSnapshot, RiskLimitBreached, SubmitOrder, TargetApproved,
                          TargetPosition, TradingStateChanged)
from services.risk import limits
from services.risk.breakers import Breakers, Trip
from services.risk.config import RiskConfig
from services.risk.exposure import Exposure
from services.risk.orders import OpenOrders

RECENT_FILLS = 10_000  # fill ids remembered to drop a redelivered copy (bounded)
LAST_BREACHES = 20  # the newest breaches and trips kept for status
ZERO = Decimal(0)


class _Client(msgspec.Struct, frozen=True):
    """One client's limits, and the subsets the actor calls on each kind of event."""

    limits: tuple[limits.Limit, ...]
    guarding: tuple[limits.Limit, ...]  # asked about reductions too
    counting: tuple[limits.Limit, ...]  # told of each approval (the rolling windows)
    watching: tuple[limits.Limit, ...]  # told of each new equity (the loss limits)
    clamp: bool
    capital: Decimal


def _client(config: RiskConfig, client: str) -> _Client:
    resolved = config.limits_of(client)
    capital = config.capital.get(client)
    each = limits.build(resolved, capital)
    return _Client(each, tuple(x for x in each if x.guards_reductions),
                   tuple(x for x in each if isinstance(x, limits.MaxOrderRate)),
                   tuple(x for x in each if PositionChanged in x.reads),
                   resolved.on_breach == "clamp", capital if capital is not None else ZERO)


class RiskActor(Actor):
    name = "risk"

    def __init__(self, clock: Clock, out: Outbox, config: RiskConfig, persist_trips: bool = False) -> None:
        """`persist_trips`: a tripped drawdown is also written to KV as its client's state, so that
        a restart (which starts the peak afresh) does not trade again (a service; a backtest never restarts)."""
        super().__init__(clock, out)
        self._persist_trips = persist_trips
        self._persisted: dict[str, int] = {}  # client -> the drawdown trip written to KV
        self._clients = {client: _client(config, client) for client in config.clients}
        # None until the key is read: treated as disabled, and the first value always publishes
        self.enabled: bool | None = None
        self._positions = NetPositions()
        self._prices = LatestPrices()
        self._exposure = Exposure(self._positions, self._prices)
        self._recent_fills = RecentIds(RECENT_FILLS)  # (venue, fill id): a redelivered copy is dropped
        self._verdicts: Counter[str] = Counter()
        self._scopes = ScopeStates()  # client and market scopes, and the clients' own switches
        self._breakers = Breakers({client: config.limits_of(client) for client in config.clients})
        self._stale_check = self._breakers.reads_prices  # a target's price checked by the stale_price breaker
        # (time, scope or the target refused, limit, action, detail), formatted only when status asks
        self._last_breaches: deque[tuple[int, str | TargetPosition, str, str, str]] = deque(maxlen=LAST_BREACHES)
        reads = {kind for each in self._clients.values() for limit in each.limits for kind in limit.reads}
        self._reads_prices = PriceSnapshot in reads or self._breakers.reads_prices
        self._reads_orders = SubmitOrder in reads or self._breakers.reads_orders
        # Only the gross caps read the exposure: without one, fills and approvals need not feed it.
        self._gross = any(isinstance(limit, limits.MaxGrossNotional)
                          for each in self._clients.values() for limit in each.limits)
        self._open_orders = OpenOrders() if SubmitOrder in reads else None
        self._watched = {c for c, each in self._clients.items() if each.watching}
        self._pnl: dict[str, dict[tuple[str, str], PositionChanged]] = {c: {} for c in self._watched}
        self._started = False  # equity reaches the loss limits only once the replays have caught up
        # What the open-order count reads (none without the limit). Not the actor's own handlers:
        # an actor holding its bound methods is a cycle that outlives a backtest's run.
        o = self._open_orders
        self._on_order: dict[type, Callable[[Any], None]] = {} if o is None else {
            SubmitOrder: o.on_submit_order, OrderAccepted: o.on_order_accepted, OrderRejected: o.on_order_rejected,
            OrderCanceled: o.on_order_canceled, OrdersCanceled: o.on_orders_canceled}

    def inputs(self) -> Sequence[Input]:
        watching = bool(self._watched)
        on_price = self.on_price_snapshot if watching else self._prices.on_price_snapshot
        prices = [event_input(sj.PRICES, PriceSnapshot, on_price, Delivery.LATEST)] if self._reads_prices else []
        positions = ([event_input(sj.POSITIONS, PositionChanged, self.on_position_changed, Delivery.LATEST)]
                     if watching else [])
        # Open orders need every order event in the stream's order, so one input reads them all
        # (fills included); without them, fills alone.
        orders = (Input(sj.ORDERS, self.on_order_event, codec.decode_any, Delivery.REPLAY)
                  if self._reads_orders
                  else event_input(sj.FILLS, OrderFilled, self.on_order_filled, Delivery.REPLAY))
        return [
            event_input(sj.TARGETS, TargetPosition, self.on_target_position, Delivery.DURABLE),
            *prices,
            *positions,
            orders,
            Input(sj.TRADING_ENABLED, self.on_trading_enabled, codec.decode_trading_enabled, Delivery.LATEST),
            kv_input(sj.CLIENT_SWITCHES, self.on_client_switch),
            kv_input(sj.SCOPE_STATES, self.on_scope_state),
        ]

    @property
    def ticks(self) -> bool:
        """Whether the process should call `on_tick` (a breaker watches for something that stops)."""
        return self._breakers.ticks

    def on_start(self) -> None:
        self._started = True
        self._breakers.live = True
        for client in self._watched:
            self._mark(client)

    # --- state

    def on_trading_enabled(self, enabled: bool) -> None:
        if enabled == self.enabled:
            return
        if enabled and self.enabled is False:  # a person resumed: a tripped drawdown is cleared
            for each in self._clients.values():
                for limit in each.watching:
                    limit.on_resume()
        self.enabled = enabled
        now = self.clock.now_ns()
        self.out.publish(TradingStateChanged(id=f"trading.{enabled}.{now}", ts_event=now, enabled=enabled,
                                             reason=f"kill switch key set to {str(enabled).lower()}", scope=GLOBAL,
                                             state=ACTIVE if enabled else HALTED, by="kill switch"))

    def on_client_switch(self, entry: KvEntry) -> None:
        self._set_scope(*switch_change(entry.key, entry.value))

    def on_scope_state(self, entry: KvEntry) -> None:
        self._set_scope(*scope_change(entry.key, entry.value))

    def _set_scope(self, scope: str, state: State, by: str, why: str) -> None:
        before = self._scopes.set(scope, state)
        if before == state:
            return
        client = scope_client(scope)
        if state == ACTIVE and not scope.startswith("market.") and client in self._clients:
            for limit in self._clients[client].watching:  # a person resumed the client: a tripped drawdown clears
                limit.on_resume()
        now = self.clock.now_ns()
        self.out.publish(TradingStateChanged(id=f"trading.{scope}.{state}.{now}", ts_event=now,
                                             enabled=state != HALTED, reason=why, scope=shown(scope), state=state,
                                             by=by))

    def _trip(self, trip: Trip) -> None:
        """A breaker halts its scope."""
        if self._scopes.get(trip.scope) != HALTED:
            self._hold(trip.scope, HALTED, f"breaker {trip.breaker}", trip.detail)

    def _hold(self, scope: str, state: State, by: str, why: str) -> None:
        """Set a scope's state in KV too, so that it holds across restarts until a person resumes it."""
        self._set_scope(scope, state, by, why)
        self.out.put_control(sj.state_key(scope), state_value(state, f"{by}: {why}"))
        self._last_breaches.append((self.clock.now_ns(), scope, by.replace(" ", "."), state, why))

    def on_tick(self, now: int) -> None:
        """The process's clock: breakers that watch for something that stops coming."""
        held = [key for key, qty in self._positions.by_key.items() if qty]
        for trip in self._breakers.on_tick(now, held, self._prices.by_market):
            self._trip(trip)

    def on_market_halted(self, halted: MarketHalted) -> None:
        for trip in self._breakers.on_market_halted(halted):
            self._trip(trip)

    def on_order_event(self, event: Any) -> None:
        kind = type(event)
        if kind is OrderFilled:
            self.on_order_filled(event)
        elif kind is MarketHalted:
            self.on_market_halted(event)
        else:
            handler = self._on_order.get(kind)
            if handler is not None:  # commands other than SubmitOrder, and modifications, change no count
                handler(event)
        trip = self._breakers.on_order_event(event, self.clock.now_ns())
        if trip is not None:
            self._trip(trip)

    def on_order_filled(self, fill: OrderFilled) -> None:
        if not self._recent_fills.add((fill.venue, fill.id)):
            return
        self._positions.apply(fill)
        if self._gross:
            self._exposure.on_order_filled(fill)
        if self._open_orders is not None:
            self._open_orders.on_order_filled(fill)

    def on_price_snapshot(self, snapshot: PriceSnapshot) -> None:
        self._prices.on_price_snapshot(snapshot)
        market = (snapshot.venue, snapshot.symbol)
        for client in self._watched:
            if market in self._pnl[client]:
                self._mark(client)

    def on_position_changed(self, position: PositionChanged) -> None:
        held = self._pnl.get(position.client)
        if held is None:
            return
        market = (position.venue, position.symbol)
        previous = held.get(market)
        if previous is None or position.ts_event >= previous.ts_event:
            held[market] = position
            self._mark(position.client)

    def _mark(self, client: str) -> None:
        if not self._started:
            return
        equity = marked_equity(self._clients[client].capital, self._pnl[client].values(), self._mark_price)
        now = self.clock.now_ns()
        for limit in self._clients[client].watching:
            limit.on_equity(now, equity)
        if self._persist_trips:
            self._persist_drawdown(client)

    def _persist_drawdown(self, client: str) -> None:
        for limit in self._clients[client].watching:
            tripped = limit.tripped_ns if type(limit) is limits.Drawdown else None
            if tripped is not None and self._persisted.get(client) != tripped:
                self._persisted[client] = tripped
                state = HALTED if limit.action == "halted" else REDUCING
                self._hold(client_scope(client), state, "max_drawdown", limit.trips[-1]["why"])

    def _mark_price(self, venue: str, symbol: str) -> Decimal | None:
        snapshot = self._prices.by_market.get((venue, symbol))
        return None if snapshot is None else snapshot.price

    def position(self, client: str, venue: str, symbol: str) -> Decimal:
        return self._positions.get((client, venue, symbol))

    # --- verdicts

    def on_target_position(self, target: TargetPosition) -> None:
        now = self.clock.now_ns()
        try:  # the amounts decoding checks: a target published in the same process was never decoded
            check(target)
        except AmountError as exc:
            self._breach(target, now, "invalid_target", f"{exc}; no limit can be checked against it")
            return
        client = self._clients.get(target.client)
        if client is None:
            self._breach(target, now, "unknown_client", f"client {target.client!r} is not configured "
                                                        f"(known: {', '.join(sorted(self._clients)) or 'none'})")
            return
        if target.qty.is_zero() and target.qty.is_signed():
            target = msgspec.structs.replace(target, qty=ZERO)
        position = self._positions.get((target.client, target.venue, target.symbol))
        reducing = reduces(target.qty, position)
        if self._scopes.restricted and not reducing:
            state, scope = self._scopes.of(target.client, target.venue, target.symbol)
            if state != ACTIVE:
                self._breach(target, now, "trading_state", f"{scope} is {state}: only reductions pass; target "
                             f"{target.qty} {target.symbol} on {target.venue} would add to the position {position}")
                return
        if self._stale_check:
            snapshot = self._prices.by_market.get((target.venue, target.symbol))
            trip = self._breakers.stale_price(target.client, snapshot, target.venue, target.symbol, now)
            if trip is not None:
                self._trip(trip)
                if not reducing:
                    self._breach(target, now, "trading_state", f"{trip.scope} is halted: {trip.detail}")
                    return
        context = limits.Context(
            now, self.enabled is True, position, self._prices.by_market.get((target.venue, target.symbol)),
            self._exposure, self._open_orders.by_client[target.client] if self._open_orders is not None else 0)
        clamped: list[tuple[str, str]] = []
        for limit in client.guarding if reducing else client.limits:
            detail = limit.check(target, context)
            if detail is None:
                continue
            if not (client.clamp and limit.clamps):
                self._breach(target, now, limit.name, detail)
                return
            clamped.append((limit.name, detail))
            target = msgspec.structs.replace(target, qty=limit.fit(target, context))
        for limit in client.counting:
            limit.on_approved(now)
        for name, detail in clamped:
            self._breach(target, now, name, f"{detail}; clamped to {target.qty}", action="clamped")
        self._verdicts["approved"] += 1
        if self._gross:
            self._exposure.approved[(target.client, target.venue, target.symbol)] = target.qty
        self.out.publish(TargetApproved(id=target.id, ts_event=now, target=target))

    def _breach(self, target: TargetPosition, now: int, limit: str, detail: str, action: str = "rejected") -> None:
        self._verdicts[limit if action == "rejected" else f"{limit}.{action}"] += 1
        self._last_breaches.append((now, target, limit, action, detail))
        self.out.publish(RiskLimitBreached(
            id=f"{target.id}.{limit}", ts_event=now, client=target.client, venue=target.venue,
            symbol=target.symbol, limit=limit, detail=detail, target_id=target.id, action=action))

    def status(self) -> dict[str, Any]:
        approved = self._verdicts["approved"]
        rejected = {k: n for k, n in sorted(self._verdicts.items()) if k != "approved" and "." not in k}
        return {
            "trading_enabled": self.enabled is True,
            "positions": self._positions.open(),
            "approved": approved,
            "breached": sum(rejected.values()),
            "breaches_by_limit": rejected,
            "clamped_by_limit": {k.split(".")[0]: n for k, n in sorted(self._verdicts.items()) if "." in k},
            # what `bosun status` shows: each client's limits, in the order they are checked, and
            # the state of those that keep one (daily loss used, drawdown tripped, ...)
            "limits": {client: {limit.name: limit.describe() for limit in each.limits}
                       for client, each in sorted(self._clients.items())},
            "limit_state": {client: {limit.name: state for limit in each.limits
                                     if (state := limit.state()) is not None}
                            for client, each in sorted(self._clients.items())},
            "open_orders": dict(sorted(self._open_orders.by_client.items())) if self._open_orders is not None else {},
            # scopes not active (a client's own switch as switch.<client>), the breakers, the newest breaches
            "scopes": self._scopes.snapshot(),
            "breakers": self._breakers.describe(),
            "last_breaches": [{"at": limits.iso(at), "limit": limit, "action": action, "detail": detail,
                               "scope": where if isinstance(where, str)
                               else market_scope(where.client, where.venue, where.symbol)}
                              for at, where, limit, action, detail in self._last_breaches],
        }
