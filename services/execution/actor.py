"""The execution service's logic: make each venue match the approved target, idempotently.

- A target is declarative: it is diffed against the position and the open orders and the
  smallest change is made (`orders.plan`). A target id already acted on does nothing.
- Everything published is applied to the book at once; the echo on `order.>` (and, after
  a restart, the replayed order log) is applied only if it is new, so the book and the
  shadow venues' working orders come back from the log.
- Trading starts disabled until the kill-switch key says true. Disabled: every open order
  is cancelled at once and only targets that reduce exposure go through.
- The last approved target per client/venue/symbol arms its stop-loss / take-profit: the
  first bar or trade through a level closes the position (stop first when a bar crosses
  both), and the target is spent until a new target id arrives. After a restart the last
  approved target per key (read LATEST, before start) re-arms its levels without placing
  anything; it is spent if the replayed order log holds a stop order for it.
- `dry_run` sends nothing: every order becomes OrderRejected("dry run: order not sent").
  Venues of kind "live" reject until the ccxt adapter is wired."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from bosun.model.exposure import reduces
from bosun.model.grid import round_qty
from bosun.runtime.actor import Actor, Delivery, Input, Outbox, event_input
from bosun.runtime.clock import Clock
from proto import codec
from proto import subjects as sj
from proto.events import Bar, Event, OrderSubmitted, Side, TargetApproved, TargetPosition, Trade
from services.execution.orders import Cancel, Key, OrderBook, Place, client_order_id, key_of, plan, rejection
from services.execution.config import ExecutionConfig, VenueConfig
from services.execution.venues import ShadowVenue

STOP_LOSS = "stop_loss"
TAKE_PROFIT = "take_profit"
KILL_SWITCH = "kill_switch"
DRY_RUN = "dry run: order not sent"
LIVE_NOT_WIRED = "live venues are not wired yet"


@dataclass(slots=True)
class _Armed:
    """The last approved target of a key: its stop levels and how many orders it made."""

    target: TargetPosition
    orders: int = 0
    spent: bool = False  # triggered, or no level to trigger


def _stop_hit(target: TargetPosition, long: bool, open_: Decimal, high: Decimal,
              low: Decimal) -> tuple[str, Decimal] | None:
    """(reason, fill price) when the range crossed a level: the level, or the open if it opened through."""
    sl, tp = target.stop_loss, target.take_profit
    if long:
        if sl is not None and low <= sl:
            return STOP_LOSS, min(sl, open_)
        if tp is not None and high >= tp:
            return TAKE_PROFIT, max(tp, open_)
    else:
        if sl is not None and high >= sl:
            return STOP_LOSS, max(sl, open_)
        if tp is not None and low <= tp:
            return TAKE_PROFIT, min(tp, open_)
    return None


class ExecutionActor(Actor):
    name = "execution"

    def __init__(self, clock: Clock, out: Outbox, config: ExecutionConfig) -> None:
        super().__init__(clock, out)
        self.dry_run = config.dry_run
        self.trading_enabled = False  # until a person turns trading on: after any restart, too
        self.book = OrderBook()
        self._cfg: dict[tuple[str, str], VenueConfig] = {}  # (client, venue) -> its config
        self._venues: dict[tuple[str, str], ShadowVenue] = {}  # (client, venue) -> shadow venue
        # One ShadowVenue per venue name and config: clients with equal settings share one.
        shared: dict[tuple[str, VenueConfig], ShadowVenue] = {}
        for client, venues in config.venues.items():
            for venue, cfg in venues.items():
                self._cfg[(client, venue)] = cfg
                if cfg.kind == "shadow":
                    if (venue, cfg) not in shared:
                        shared[(venue, cfg)] = ShadowVenue(venue, cfg)
                    self._venues[(client, venue)] = shared[(venue, cfg)]
        self._shadows = list(shared.values())
        self._armed: dict[Key, _Armed] = {}
        # How many of them still have a level to trigger: market data is checked against the
        # armed levels only while there are some, so a run without stops pays nothing per bar.
        self._unspent = 0
        self._started = False
        # Until start: per key, the last target in the replayed order log, its order count and
        # whether a stop-loss/take-profit order closed it (so a re-armed target resumes as it was).
        self._logged: dict[Key, tuple[str, int, bool]] = {}

    def inputs(self) -> Sequence[Input]:
        return [
            event_input(sj.APPROVED, TargetApproved, self.on_target_approved, Delivery.DURABLE),
            event_input(sj.APPROVED, TargetApproved, self.on_last_approved, Delivery.LATEST),
            event_input(sj.BARS, Bar, self.on_bar, Delivery.LIVE),
            event_input(sj.TRADES, Trade, self.on_trade, Delivery.LIVE),
            Input(sj.ORDERS, self.on_order_event, codec.decode_any, Delivery.REPLAY),
            Input(sj.TRADING_ENABLED, self.on_trading_enabled, codec.decode_trading_enabled, Delivery.LATEST),
        ]

    def on_start(self) -> None:
        self._started = True
        for key, armed in self._armed.items():  # re-armed from the last approvals
            target_id, orders, stopped = self._logged.get(key, ("", 0, False))
            if target_id == armed.target.id:
                armed.orders, armed.spent = orders, armed.spent or stopped
            if not armed.spent:
                self._unspent += 1
        self._logged.clear()
        if not self.trading_enabled:  # orders restored from the log while the kill switch is off
            self._cancel_all()

    # --- inputs

    def on_trading_enabled(self, enabled: bool) -> None:
        self.trading_enabled = enabled
        if not enabled:
            self._cancel_all()

    def on_order_event(self, event: Event) -> None:
        """The order log: our own echo (already applied) or, after a restart, the replay."""
        if self.book.apply(event):  # False for anything else, or an event applied already
            venue = self._venues.get((event.client, event.venue))
            if venue is not None:
                venue.replay(event)
            if not self._started and isinstance(event, OrderSubmitted):
                self._log_order(event)

    def on_last_approved(self, approved: TargetApproved) -> None:
        """The last approval per key, read before start: re-arm its levels, place nothing.
        Afterwards (and on the in-process bus, where this is a plain subscription) it is
        ignored: the DURABLE input applies every approval once."""
        if self._started:
            return
        target = approved.target
        key = (target.client, target.venue, target.symbol)
        self._armed[key] = _Armed(target, spent=target.stop_loss is None and target.take_profit is None)

    def on_target_approved(self, approved: TargetApproved) -> None:
        target = approved.target
        if not self.book.mark_handled(target.id):
            return
        key = (target.client, target.venue, target.symbol)
        position = self.book.position(key)
        problem = self._target_problem(target, position)
        if problem:
            self._emit([rejection(client_order_id(target.id, 1), target, problem)])
            return
        previous = self._armed.get(key)
        if previous is not None and not previous.spent:
            self._unspent -= 1  # the new target replaces the old one's levels
        armed = self._armed[key] = _Armed(target, spent=target.stop_loss is None and target.take_profit is None)
        if not armed.spent:
            self._unspent += 1
        actions = plan(target.qty, position, self.book.open_orders(key), self._cfg[key[:2]].step_size)
        for action in actions:
            match action:
                case Cancel(coid):
                    self._cancel(key, coid, f"superseded by target {target.id}")
                case Place(side, qty):
                    self._submit(armed, side, qty, target.reason, target.ts_event)

    def on_market(self, md: Bar | Trade) -> None:
        """A bar or a trade: fills on the shadow venues, then the armed stops."""
        for venue in self._shadows:
            events = venue.on_market(md)
            if events:
                self._emit(events)
        if self._unspent:
            self._check_stops(md)

    on_bar = on_trade = on_market  # one handler, not a wrapper each: it runs on every bar

    def _log_order(self, order: OrderSubmitted) -> None:
        key = key_of(order)
        target_id, n, stopped = self._logged.get(key, (order.target_id, 0, False))
        if target_id != order.target_id:  # a newer target's orders: the older one is history
            n, stopped = 0, False
        self._logged[key] = (order.target_id, n + 1, stopped or order.reason in (STOP_LOSS, TAKE_PROFIT))

    # --- decisions

    def _target_problem(self, target: TargetPosition, position: Decimal) -> str | None:
        if (target.client, target.venue) not in self._cfg:
            return f"client {target.client!r} has no venue {target.venue!r} configured"
        if not self.trading_enabled and not reduces(target.qty, position):
            return (f"trading disabled: target {target.qty} does not reduce the position {position} "
                    f"(only reducing targets pass while the kill switch is off)")
        return None

    def _check_stops(self, md: Bar | Trade) -> None:
        venue, symbol, ts = md.venue, md.symbol, md.ts_event
        if type(md) is Trade:  # a bar of one price
            open_ = high = low = md.price
            ts_open = ts
        else:
            open_, high, low, ts_open = md.open, md.high, md.low, md.ts_open
        for key, armed in self._armed.items():
            if armed.spent or key[1] != venue or key[2] != symbol or ts_open < armed.target.ts_event:
                continue
            position = self.book.position(key)
            if position * armed.target.qty <= 0:
                continue  # flat, or the position is not (yet) on the target's side
            hit = _stop_hit(armed.target, position > 0, open_, high, low)
            if hit is None:
                continue
            reason, price = hit
            armed.spent = True
            self._unspent -= 1
            for open_order in self.book.open_orders(key):
                self._cancel(key, open_order.order.id, reason)
            qty = round_qty(abs(position), self._cfg[(key[0], venue)].step_size)
            if qty > 0:
                self._submit(armed, "sell" if position > 0 else "buy", qty, reason, ts, fill_price=price)

    # --- effects

    def _submit(self, armed: _Armed, side: Side, qty: Decimal, reason: str, decided_at_ns: int,
                fill_price: Decimal | None = None) -> None:
        target = armed.target
        armed.orders += 1
        order = OrderSubmitted(id=client_order_id(target.id, armed.orders), ts_event=decided_at_ns,
                               client=target.client, venue=target.venue, symbol=target.symbol, side=side, qty=qty,
                               order_type="market", target_id=target.id, reason=reason)
        venue = self._venues.get((target.client, target.venue))
        if self.dry_run or venue is None:
            self._emit([rejection(order.id, order, DRY_RUN if self.dry_run else LIVE_NOT_WIRED)])
            return
        self._emit([order, *venue.submit(order, decided_at_ns, fill_price)])

    def _cancel(self, key: Key, coid: str, reason: str) -> None:
        venue = self._venues.get(key[:2])
        if venue is not None and not self.dry_run:
            self._emit(venue.cancel(coid, reason, self.clock.now_ns()))

    def _cancel_all(self) -> None:
        for open_order in list(self.book.open.values()):
            self._cancel(key_of(open_order.order), open_order.order.id, KILL_SWITCH)

    def _emit(self, events: list[Event]) -> None:
        for event in events:
            self.book.apply(event)
            self.out.publish(event)

    # --- health

    def status(self) -> dict[str, object]:
        return {
            "trading_enabled": self.trading_enabled,
            "dry_run": self.dry_run,
            "open_orders": {coid: {"client": o.order.client, "venue": o.order.venue, "symbol": o.order.symbol,
                                   "side": o.order.side, "remaining": str(o.remaining), "reason": o.order.reason}
                            for coid, o in self.book.open.items()},
            "positions": {".".join(key): str(qty) for key, qty in self.book.positions.items() if qty != 0},
            "fills": self.book.fills,
        }
