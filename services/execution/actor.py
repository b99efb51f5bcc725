"""The execution service's logic: make each venue match the approved target, idempotently.

- A target is declarative: it is diffed against the position and the open orders and the
  smallest change is made (`orders.plan`), as commands (SubmitOrder, CancelOrder) that a
  venue adapter carries out and answers with Order* events. A target id already acted on
  does nothing.
- Every command is applied to the book as it is issued; the echo on `order.>`, the venues'
  answers and, after a restart, the replayed order log are applied only if new.
- A target's stop-loss / take-profit become its bracket: a stop_market and a
  take_profit_market order that close the position, one-cancels-the-other, replacing the
  previous target's bracket. The venue triggers them (a simulated one on its market data).
  Closing whatever is held when they trigger, they follow the position as it changes; a fill that
  leaves it flat, with nothing working to open it again, removes them.
- Trading starts disabled until the kill-switch key says true. Disabled: every open order
  but the brackets (they only ever close) is cancelled at once, and only targets that reduce
  exposure go through.
- A target with reason `end_of_data` closes at the last close: a market_on_close order.
- On start each venue adapter reports what its venue holds (VenueStateReported); an order
  the book thinks open that the venue does not hold is closed in the book, one the venue
  holds that no intent explains is cancelled, and a position that differs is shown in status.
  Only reports of this run count: the log holds those of every earlier one.
- `dry_run` sends nothing: every order becomes OrderRejected("dry run: order not sent")."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from bosun.model.exposure import reduces
from bosun.model.grid import round_price
from bosun.runtime.actor import Actor, Delivery, Input, Outbox, event_input
from bosun.runtime.clock import Clock
from proto import codec
from proto import subjects as sj
from proto.events import (CancelOrder, Event, OrderCanceled, OrderFilled, OrderType, Reason, Side, SubmitOrder,
                          TargetApproved, TargetPosition, VenueStateReported)
from services.execution.config import ExecutionConfig, VenueConfig
from services.execution.orders import (PROTECTIVE, Cancel, Key, OpenOrder, OrderBook, Place, client_order_id, key_of,
                                       plan, rejection)

DRY_RUN = "dry run: order not sent"
ZERO = Decimal(0)
BPS = Decimal(10_000)


class ExecutionActor(Actor):
    name = "execution"

    def __init__(self, clock: Clock, out: Outbox, config: ExecutionConfig) -> None:
        super().__init__(clock, out)
        self.dry_run = config.dry_run
        self.trading_enabled = False  # until a person turns trading on: after any restart, too
        self.book = OrderBook()
        self._cfg: dict[tuple[str, str], VenueConfig] = {  # (client, venue) -> its config
            (client, venue): cfg for client, venues in config.venues.items() for venue, cfg in venues.items()}
        self._born = clock.now_ns()  # venue reports older than this are an earlier run's
        self._started = False
        self._reports: list[VenueStateReported] = []  # this run's, received while the log replays
        self.disagreements: dict[str, str] = {}  # client.venue.symbol -> the positions that differ

    def inputs(self) -> Sequence[Input]:
        return [
            event_input(sj.APPROVED, TargetApproved, self.on_target_approved, Delivery.DURABLE),
            Input(sj.ORDERS, self.on_order_event, codec.decode_any, Delivery.REPLAY),
            Input(sj.TRADING_ENABLED, self.on_trading_enabled, codec.decode_trading_enabled, Delivery.LATEST),
        ]

    def on_start(self) -> None:
        self._started = True
        if not self.trading_enabled:  # orders restored from the log while the kill switch is off
            self._cancel_all()
        for report in self._reports:
            self._reconcile(report)
        self._reports.clear()

    # --- inputs

    def on_trading_enabled(self, enabled: bool) -> None:
        self.trading_enabled = enabled
        if not enabled:
            self._cancel_all()

    def on_order_event(self, event: Event) -> None:
        """The order log: our own commands' echo, the venues' answers, or after a restart the replay."""
        # The book first: it takes nearly every entry, and ignores what is not one or applied already.
        fill = type(event) is OrderFilled
        filled = self.book.open.get(event.client_order_id) if fill else None  # type: ignore[attr-defined]
        if self.book.apply(event):
            if fill and self._started:
                self._drop_bracket_when_flat(event, None if filled is None else filled.order)  # type: ignore[arg-type]
            return
        if type(event) is not VenueStateReported or event.ts_event < self._born:
            return
        if self._started:
            self._reconcile(event)
        else:
            self._reports.append(event)

    def on_target_approved(self, approved: TargetApproved) -> None:
        target = approved.target
        if not self.book.mark_handled(target.id):
            return
        key = (target.client, target.venue, target.symbol)
        position = self.book.position(key)
        problem = self._target_problem(target, position)
        if problem:
            self._emit(rejection(client_order_id(target.id, 1), target, problem))
            return
        orders = _Numbering(target.id)
        step = self._cfg[key[:2]].step_size
        for action in plan(target.qty, position, self.book.open_orders(key), step):
            match action:
                case Cancel(coid):
                    self._cancel(self.book.open[coid], f"superseded by target {target.id}", target.ts_event)
                case Place(side, qty):
                    if target.reason == "signal" and self._cfg[key[:2]].entry == "limit":
                        self._submit_limit(target, orders.next(), side, qty, self._cfg[key[:2]])
                        continue
                    order_type: OrderType = "market_on_close" if target.reason == "end_of_data" else "market"
                    self._submit(target, orders.next(), side, qty, order_type, target.reason)
        self._place_bracket(target, key, orders)

    # --- decisions

    def _target_problem(self, target: TargetPosition, position: Decimal) -> str | None:
        if (target.client, target.venue) not in self._cfg:
            return f"client {target.client!r} has no venue {target.venue!r} configured"
        if not self.trading_enabled and not reduces(target.qty, position):
            return (f"trading disabled: target {target.qty} does not reduce the position {position} "
                    f"(only reducing targets pass while the kill switch is off)")
        return None

    def _place_bracket(self, target: TargetPosition, key: Key, orders: _Numbering) -> None:
        """The target's stop-loss / take-profit as one OCO pair closing the position, in place of
        the previous target's; a flat target, or one without levels, has none."""
        for leg in self.book.open_orders(key, protective=True):
            self._cancel(leg, f"bracket replaced by target {target.id}", target.ts_event)
        if not target.qty or (target.stop_loss is None and target.take_profit is None):
            return
        close: Side = "sell" if target.qty > 0 else "buy"
        group = client_order_id(target.id, 0)
        if target.stop_loss is not None:
            self._submit(target, orders.next(), close, ZERO, "stop_market", "stop_loss", target.stop_loss, group)
        if target.take_profit is not None:
            self._submit(target, orders.next(), close, ZERO, "take_profit_market", "take_profit", target.take_profit,
                         group)

    def _drop_bracket_when_flat(self, fill: OrderFilled, order: SubmitOrder | None) -> None:
        """A fill that closed the position, with nothing working that would open it again: the
        bracket has nothing left to guard, and goes (the filled leg's OCO siblings go by the venue)."""
        key = key_of(fill)
        if self.book.position(key) or self.book.open_orders(key):
            return
        for leg in self.book.open_orders(key, protective=True):
            if order is None or order.oco is None or leg.order.oco != order.oco:
                self._cancel(leg, "bracket removed: the position is closed", fill.ts_event)

    def _reconcile(self, report: VenueStateReported) -> None:
        key = (report.client, report.venue, report.symbol)
        held = set(report.open_orders)
        for coid, open_order in list(self.book.open.items()):
            o = open_order.order
            if (o.client, o.venue, o.symbol) == key and coid not in held:
                self._emit(OrderCanceled(id=f"{coid}.reconciled", ts_event=self.clock.now_ns(), client_order_id=coid,
                                         client=o.client, venue=o.venue, symbol=o.symbol,
                                         reason=f"reconciliation: venue {o.venue} does not hold it"))
        for coid in sorted(held - self.book.open.keys()):
            self._emit(CancelOrder(id=f"{coid}.cancel", ts_event=self.clock.now_ns(), client_order_id=coid,
                                   client=report.client, venue=report.venue, symbol=report.symbol,
                                   reason="reconciliation: no intent explains it"))
        ours = self.book.position(key)
        if ours != report.position:
            self.disagreements[".".join(key)] = f"execution {ours}, venue {report.position}"

    # --- effects

    def _submit(self, target: TargetPosition, coid: str, side: Side, qty: Decimal, order_type: OrderType,
                reason: Reason, stop_price: Decimal | None = None, oco: str | None = None) -> None:
        order = SubmitOrder(id=coid, ts_event=target.ts_event, client=target.client, venue=target.venue,
                            symbol=target.symbol, side=side, qty=qty, order_type=order_type, stop_price=stop_price,
                            close_position=stop_price is not None, oco=oco, target_id=target.id, reason=reason,
                            market_ns=target.ts_event)
        self._emit(rejection(order.id, order, DRY_RUN) if self.dry_run else order)

    def _submit_limit(self, target: TargetPosition, coid: str, side: Side, qty: Decimal, cfg: VenueConfig) -> None:
        """A limit order resting `limit_offset_bps` from the target's price (below it to buy), on the tick."""
        offset = cfg.limit_offset_bps / BPS
        limit = round_price(target.price * (1 - offset if side == "buy" else 1 + offset), cfg.tick_size, side)
        expire = None if cfg.limit_ttl_s is None else target.ts_event + int(cfg.limit_ttl_s * 1_000_000_000)
        order = SubmitOrder(id=coid, ts_event=target.ts_event, client=target.client, venue=target.venue,
                            symbol=target.symbol, side=side, qty=qty, order_type="limit", limit_price=limit,
                            target_id=target.id, reason=target.reason, market_ns=target.ts_event,
                            time_in_force="GTC" if expire is None else "GTD", expire_ns=expire)
        self._emit(rejection(order.id, order, DRY_RUN) if self.dry_run else order)

    def _cancel(self, open_order: OpenOrder, reason: str, market_ns: int | None = None) -> None:
        o = open_order.order
        self._emit(CancelOrder(id=f"{o.id}.cancel", ts_event=self.clock.now_ns(), client_order_id=o.id,
                               client=o.client, venue=o.venue, symbol=o.symbol, reason=reason, market_ns=market_ns))

    def _cancel_all(self) -> None:
        """The kill switch: every working order that could add exposure; brackets stay, they only close."""
        for open_order in list(self.book.open.values()):
            if open_order.order.order_type not in PROTECTIVE:
                self._cancel(open_order, "kill_switch")

    def _emit(self, event: Event) -> None:
        self.book.apply(event)
        self.out.publish(event)

    # --- health

    def status(self) -> dict[str, object]:
        return {
            "trading_enabled": self.trading_enabled,
            "dry_run": self.dry_run,
            "open_orders": {coid: {"client": o.order.client, "venue": o.order.venue, "symbol": o.order.symbol,
                                   "side": o.order.side, "type": o.order.order_type, "remaining": str(o.remaining),
                                   "reason": o.order.reason}
                            for coid, o in self.book.open.items()},
            "positions": self.book.positions.open(),
            "fills": self.book.fills,
            "position_disagreements": self.disagreements,
        }


class _Numbering:
    """The client order ids of one target's orders: its 1st, 2nd, ... (0 names its OCO group)."""

    __slots__ = ("target_id", "n")

    def __init__(self, target_id: str) -> None:
        self.target_id = target_id
        self.n = 0

    def next(self) -> str:
        self.n += 1
        return client_order_id(self.target_id, self.n)
