"""The execution service's logic: make each venue match the approved target, idempotently.

- A target is declarative: it is diffed against the position and the open orders and the
  smallest change is made (`orders.plan`), as commands (SubmitOrder, CancelOrder) that a
  venue adapter carries out and answers with Order* events. A target id already acted on
  does nothing. An order being cancelled counts as trading no more; one a plan cancelled that
  fills anyway (the cancel lost the race, or the fill reached execution after the target) has
  the key's newest target planned again once it is closed: execution converges on it.
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
  A position whose protective levels are known but that has no working stop left gets what
  its venue's `on_unprotected` says: re-armed, flattened, or trading halted. Each report is
  answered by a ReconciliationReport (found, done, why) for the audit. Only reports of this
  run count: the log holds those of every earlier one.
- Trading states per scope (bosun.model.trading, from KV `control`): a HALTED scope has every
  working order in it cancelled but the brackets, a REDUCING one those that would add exposure;
  in either only targets that reduce exposure go through. A target of reason `kill_switch` (what
  `bosun halt --flatten` sends) places reduce-only orders.
- The last-line guard (services/execution/guard.py) re-checks the caps risk applied before a
  target's orders go out; a refusal is an OrderRejected naming the rule and a RiskLimitBreached
  `guard.<rule>` (risk and execution disagree), and nothing of the target is done.
- `durable`: every intent (an approved target, its position's protective levels) and every
  entry the book applies is also asked of the store (records.py effects), which the process's
  edge commits before the message that caused it is acked. A backtest asks for none. The log
  replayed on start was recorded as it came, but for the round a crash interrupted: only the
  replay's last REPLAY_TAIL entries are recorded again, once, on start.
- A start reads the newest snapshot of what the log rebuilds (the book, the replay's tail: see
  services/execution/replayed.py) and only the log after it, when there is one it can trust.
- `dry_run` sends nothing: every order becomes OrderRejected("dry run: order not sent")."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from decimal import Decimal

from bosun.model.exposure import reduces
from bosun.model.grid import round_price
from bosun.model.order_rules import DRY_RUN, UNEXPLAINED
from bosun.model.prices import LatestPrices
from bosun.model.trading import ACTIVE, HALTED, Change, ScopeStates, scope_change, shown, switch_change
from bosun.runtime.actor import Actor, Delivery, Input, KvEntry, Outbox, event_input, kv_input
from bosun.runtime.clock import Clock
from proto import codec
from proto import subjects as sj
from proto.events import (CancelAllOrders, CancelOrder, Event, OrderCanceled, OrderFilled, OrderType, PriceSnapshot,
                          Reason, ReconciliationReport, RiskLimitBreached, Side, SubmitOrder, TargetApproved,
                          TargetPosition, VenueStateReported)
from services.execution import replayed
from services.execution.config import ExecutionConfig, VenueConfig
from services.execution.guard import Guard, Refusal
from services.execution.orders import (PROTECTIVE, Cancel, Key, OpenOrder, OrderBook, Place, client_order_id, key_of,
                                       plan, rejection)
from services.execution.records import Protection, RecordIntent, RecordOrderEntry

# Entries at the end of a replayed log recorded again on start: a crash leaves at most the round
# it interrupted unrecorded (the binding's rounds are 256 messages at most), and nothing else
# publishes order events while execution is down.
REPLAY_TAIL = 1024
ZERO = Decimal(0)
BPS = Decimal(10_000)


class ExecutionActor(Actor):
    name = "execution"

    def __init__(self, clock: Clock, out: Outbox, config: ExecutionConfig, durable: bool = False,
                 protection: Mapping[Key, Protection] | None = None) -> None:
        super().__init__(clock, out)
        self.dry_run = config.dry_run
        self.capped_live = config.live.banner() if config.live.capped else None  # shown by `bosun status`
        self.durable = durable
        self.protection: dict[Key, Protection] = dict(protection or {})  # each position's levels, from its target
        self._tail: deque[Event] = deque(maxlen=REPLAY_TAIL)  # durable: the replay's last entries
        self.trading_enabled = False  # until a person turns trading on: after any restart, too
        self.book = OrderBook()
        self._cfg: dict[tuple[str, str], VenueConfig] = {  # (client, venue) -> its config
            (client, venue): cfg for client, venues in config.venues.items() for venue, cfg in venues.items()}
        self._born = clock.now_ns()  # venue reports older than this are an earlier run's
        self._started = False
        self._reports: list[VenueStateReported] = []  # this run's, received while the log replays
        self.disagreements: dict[str, str] = {}  # client.venue.symbol -> the positions that differ
        self._scopes = ScopeStates()
        self._current: dict[Key, TargetPosition] = {}  # the newest target planned per key, to converge on
        self._moved: dict[str, tuple[SubmitOrder, int]] = {}  # orders being cancelled that filled, the newest fill's time
        self._guard = Guard(config.guard) if config.guard else None
        self._prices = LatestPrices() if self._guard is not None and self._guard.reads_prices else None
        self._replayed_through = 0  # the ORDERS sequence a restored snapshot covers

    def inputs(self) -> Sequence[Input]:
        prices = ([event_input(sj.PRICES, PriceSnapshot, self._prices.on_price_snapshot, Delivery.LATEST)]
                  if self._prices is not None else [])
        return [
            event_input(sj.APPROVED, TargetApproved, self.on_target_approved, Delivery.DURABLE),
            Input(sj.ORDERS, self.on_order_event, codec.decode_any, Delivery.REPLAY, after=self._replayed_through),
            Input(sj.TRADING_ENABLED, self.on_trading_enabled, codec.decode_trading_enabled, Delivery.LATEST),
            kv_input(sj.CLIENT_SWITCHES, self.on_client_switch),
            kv_input(sj.SCOPE_STATES, self.on_scope_state),
            *prices,
        ]

    def on_start(self) -> None:
        self._started = True
        for entry in self._tail:  # with the state the replay ended in: the store keeps the newest anyway
            self.out.effect(self._entry_record(entry))
        self._tail.clear()
        if not self.trading_enabled:  # orders restored from the log while the kill switch is off
            self._cancel_all()
        if self._scopes.restricted:  # and those in a scope halted or reducing
            self._cancel_restricted("trading state at start")
        for report in self._reports:
            self._reconcile(report)
        self._reports.clear()

    # --- inputs

    def on_trading_enabled(self, enabled: bool) -> None:
        self.trading_enabled = enabled
        if not enabled:
            self._cancel_all()

    def on_client_switch(self, entry: KvEntry) -> None:
        self._apply_scope(switch_change(entry.key, entry.value))

    def on_scope_state(self, entry: KvEntry) -> None:
        self._apply_scope(scope_change(entry.key, entry.value))

    def _apply_scope(self, change: Change) -> None:
        self._scopes.set(change.name, change.state)
        if change.state != ACTIVE and self._started:  # before the start, on_start does it with the whole book
            self._cancel_restricted(f"{shown(change.name)} {change.state}: {change.why}")

    def on_order_event(self, event: Event) -> None:
        """The order log: our own commands' echo, the venues' answers, or after a restart the replay."""
        # The book first: it takes nearly every entry, and ignores what is not one or applied already.
        fill = type(event) is OrderFilled
        filled = self.book.open.get(event.client_order_id) if fill else None  # type: ignore[attr-defined]
        if self.book.apply(event):
            if self.durable:
                self._record(event)
            if fill and self._started:
                self._drop_bracket_when_flat(event, None if filled is None else filled.order)  # type: ignore[arg-type]
                if filled is not None and (filled.superseded or filled.order.order_type in PROTECTIVE):
                    self._note_fill(event, filled)  # type: ignore[arg-type]
            if self._moved:
                self._converge()
            return
        if type(event) is not VenueStateReported or event.ts_event < self._born:
            return
        if self._started:
            self._reconcile(event)
        else:
            self._reports.append(event)

    def on_target_approved(self, approved: TargetApproved) -> None:
        target = approved.target
        if self.book.mark_handled(target.id):
            self._steer(target, _Numbering(target.id), target.ts_event, new=True)

    def _steer(self, target: TargetPosition, orders: _Numbering, ts: int, new: bool) -> None:
        """Make the orders that take the key from its position and working orders to `target`, decided
        at market time `ts`: a `new` target (its bracket armed too), or the key's newest one again."""
        key = (target.client, target.venue, target.symbol)
        committed = self.book.committed(key)  # working market orders count as position
        position = self.book.position(key) + committed if committed else self.book.position(key)
        problem = self._target_problem(target, position)
        if problem:
            self._emit(rejection(client_order_id(orders.target_id, 1), target, problem))
            return
        cfg = self._cfg[key[:2]]
        # Limit orders and a bracket's legs, in one call; usually none. An order being cancelled
        # trades no more: if it fills first, _converge plans again.
        resting = self.book.resting(key)
        working = [o for o in resting if not o.canceling and o.order.order_type not in PROTECTIVE] if resting else resting
        actions = plan(target.qty, position, working, cfg.step_size)
        if self._guard is not None:
            snapshot = self._prices.by_market.get(key[1:]) if self._prices is not None else None
            refusal = self._guard.check(target, reduces(target.qty, position),
                                        [a.qty for a in actions if type(a) is Place], snapshot, self.clock.now_ns())
            if refusal is not None:
                self._refuse(target, refusal, orders.target_id)
                return
        self._current[key] = target
        protection = self._protection(target, key) if new else self.protection.get(key)
        if self.durable:  # first in the round: the store commits the intent before the orders it made
            self.out.effect(RecordIntent(target, protection))
        for action in actions:  # by exact type, not `match`: a class pattern costs ~0.8 us per action
            if type(action) is Cancel:
                cancelled = self.book.open[action.client_order_id]
                cancelled.superseded = True
                self._cancel(cancelled, f"superseded by target {target.id}", ts)
                continue
            if target.reason == "signal" and cfg.entry == "limit":
                self._submit_limit(target, orders.next(), action.side, action.qty, cfg, ts)
                continue
            order_type: OrderType = "market_on_close" if target.reason == "end_of_data" else "market"
            self._submit(key, ts, target.id, orders.next(), action.side, action.qty, order_type,
                         target.reason, reduce_only=target.reason == "kill_switch")
        if new:  # the bracket closes whatever is held: planning again leaves it as it is
            for leg in resting:  # the legs: the actions above place and cancel none
                if leg.order.order_type in PROTECTIVE:
                    self._cancel(leg, f"bracket replaced by target {target.id}", ts)
            if protection is not None:
                self._arm(key, target.qty, protection, orders, ts)
        if self._guard is not None and orders.n:
            self._guard.on_placed(target.client, self.clock.now_ns())

    def _note_fill(self, fill: OrderFilled, filled: OpenOrder) -> None:
        """A fill of an order a plan cancelled moved the position where the newest target's plan did
        not count on (it counts no order being cancelled): once that order is closed, plan toward the
        target again (`_converge`). A bracket's fill closed the position its target wanted: that target
        is done. (Called only for those two: the caller tests which, most fills being neither.)"""
        order = filled.order
        if order.order_type in PROTECTIVE:
            self._current.pop(key_of(fill), None)
        elif filled.superseded:
            self._moved[order.id] = (order, fill.ts_event)

    def _converge(self) -> None:
        """Plan again toward the newest target of each key whose order a plan cancelled filled, now that
        the order is closed (filled, or its cancel landed): its cancel lost the race (cancel latency),
        or its fills happened before the target was decided but reached execution after it (over NATS),
        so the plan counted on them not happening. Decided at the later of the target's market time and
        the last such fill's, as a backtest, which knows every fill before the next target, would have.
        Once per such order, and only for such orders: fills the plan counted on plan nothing."""
        for coid, (order, filled_ns) in list(self._moved.items()):
            if coid in self.book.open:
                continue
            del self._moved[coid]
            target = self._current.get(key_of(order))
            if target is not None:
                self._steer(target, _Numbering(f"{target.id}.{coid}"), max(target.ts_event, filled_ns), new=False)

    # --- decisions

    def _target_problem(self, target: TargetPosition, position: Decimal) -> str | None:
        """`position` counts the working market orders: what the target changes is what they leave."""
        if (target.client, target.venue) not in self._cfg:
            return f"client {target.client!r} has no venue {target.venue!r} configured"
        if not self.trading_enabled and not reduces(target.qty, position):
            return (f"trading disabled: target {target.qty} does not reduce the position {position} "
                    f"(only reducing targets pass while the kill switch is off)")
        if self._scopes.restricted and not reduces(target.qty, position):
            state, scope = self._scopes.of(target.client, target.venue, target.symbol)
            if state != ACTIVE:
                return (f"trading_state: {scope} is {state}: target {target.qty} does not reduce the position "
                        f"{position} (only reducing targets pass)")
        return None

    def _refuse(self, target: TargetPosition, refusal: Refusal, name: str) -> None:
        """Risk approved what the guard refuses: the target is rejected, and people are told (`name`:
        the target's id, or that of planning toward it again)."""
        now = self.clock.now_ns()
        self._emit(rejection(client_order_id(name, 1), target, f"guard {refusal.rule}: {refusal.detail}"))
        self.out.publish(RiskLimitBreached(
            id=f"{name}.guard.{refusal.rule}", ts_event=now, client=target.client, venue=target.venue,
            symbol=target.symbol, limit=f"guard.{refusal.rule}", target_id=target.id,
            detail=f"risk approved target {target.id} but execution's guard refuses it: {refusal.detail}"))

    def _protection(self, target: TargetPosition, key: Key) -> Protection | None:
        """The target's stop-loss / take-profit as its position's levels; a flat target, or one
        without levels, leaves the position with none."""
        if not target.qty or (target.stop_loss is None and target.take_profit is None):
            self.protection.pop(key, None)
            return None
        self.protection[key] = levels = Protection(target.id, target.stop_loss, target.take_profit)
        return levels

    def _arm(self, key: Key, qty: Decimal, levels: Protection, orders: _Numbering, ts: int) -> None:
        """The levels as a bracket: one OCO pair closing the position (`qty`, signed)."""
        close: Side = "sell" if qty > 0 else "buy"
        group = client_order_id(orders.target_id, 0)
        if levels.stop_loss is not None:
            self._submit(key, ts, orders.target_id, orders.next(), close, ZERO, "stop_market", "stop_loss",
                         levels.stop_loss, group)
        if levels.take_profit is not None:
            self._submit(key, ts, orders.target_id, orders.next(), close, ZERO, "take_profit_market", "take_profit",
                         levels.take_profit, group)

    def _drop_bracket_when_flat(self, fill: OrderFilled, order: SubmitOrder | None) -> None:
        """A fill that closed the position, with nothing working that would open it again: the
        bracket has nothing left to guard, and goes (the filled leg's OCO siblings go by the venue)."""
        key = (fill.client, fill.venue, fill.symbol)
        legs = self.book.open_orders(key, protective=True)  # usually none: asked first
        if not legs or self.book.position(key) or self.book.open_orders(key):
            return
        for leg in legs:
            if order is None or order.oco is None or leg.order.oco != order.oco:
                self._cancel(leg, "bracket removed: the position is closed", fill.ts_event)

    def _reconcile(self, report: VenueStateReported) -> None:
        key = (report.client, report.venue, report.symbol)
        found: list[str] = []
        done: list[str] = []
        why: list[str] = []
        if report.fills_found:
            found.append(f"{len(report.fills_found)} fills missed while down: {', '.join(report.fills_found)}")
        held = set(report.open_orders)
        for coid, open_order in list(self.book.open.items()):
            o = open_order.order
            if (o.client, o.venue, o.symbol) == key and coid not in held:
                reason = f"reconciliation: venue {o.venue} does not hold it"
                self._emit(OrderCanceled(id=f"{coid}.reconciled", ts_event=self.clock.now_ns(), client_order_id=coid,
                                         client=o.client, venue=o.venue, symbol=o.symbol, reason=reason))
                found.append(f"order {coid} open in the book, not on the venue")
                done.append(f"closed {coid} in the book")
                why.append(reason)
        for coid in sorted(held - self.book.open.keys()):
            self._emit(CancelOrder(id=f"{coid}.cancel", ts_event=self.clock.now_ns(), client_order_id=coid,
                                   client=report.client, venue=report.venue, symbol=report.symbol,
                                   reason=UNEXPLAINED))
            found.append(f"order {coid} open on the venue, in no intent")
            done.append(f"cancel {coid}")
            why.append(UNEXPLAINED)
        ours = self.book.position(key)
        if ours != report.position:
            self.disagreements[".".join(key)] = f"execution {ours}, venue {report.position}"
            found.append(f"position: execution {ours}, venue {report.position}")
        self._protect(key, report, ours, found, done, why)
        self.out.publish(ReconciliationReport(id=report.id, ts_event=self.clock.now_ns(), client=report.client,
                                              venue=report.venue, symbol=report.symbol, found=tuple(found),
                                              done=tuple(done), why=tuple(why)))

    def _protect(self, key: Key, report: VenueStateReported, position: Decimal, found: list[str], done: list[str],
                 why: list[str]) -> None:
        """A position with protective levels but no working stop: what the venue's `on_unprotected` says."""
        levels = self.protection.get(key)
        # The venue holds nothing: a leg closed it while down (on spot the book keeps the dust of the
        # fees the exchange took in the base asset), or it never filled.
        if levels is None or not position or not report.position or self.book.open_orders(key, protective=True):
            return
        found.append(f"position {position} without its protective orders (levels of target {levels.target_id})")
        # A venue no longer configured has no say: a person decides.
        mode = self._cfg[key[:2]].on_unprotected if key[:2] in self._cfg else "halt"
        ts = self.clock.now_ns()
        orders = _Numbering(f"{levels.target_id}.{mode}.{report.id}")
        if mode == "rearm":
            self._arm(key, position, levels, orders, ts)
            done.append(f"re-armed stop_loss {levels.stop_loss}, take_profit {levels.take_profit}")
        elif mode == "flatten":
            self.protection.pop(key, None)
            self._submit(key, ts, orders.target_id, orders.next(), "sell" if position > 0 else "buy", abs(position),
                         "market", "reconciliation", reduce_only=True)
            done.append(f"flatten {position} at market")
        else:
            self.out.set_trading_enabled(False)
            done.append("halt trading")
        why.append(f"on_unprotected = {mode!r} for venue {key[1]}")

    # --- effects

    def _submit(self, key: Key, ts: int, target_id: str, coid: str, side: Side, qty: Decimal, order_type: OrderType,
                reason: Reason, stop_price: Decimal | None = None, oco: str | None = None,
                reduce_only: bool = False) -> None:
        order = SubmitOrder(id=coid, ts_event=ts, client=key[0], venue=key[1], symbol=key[2], side=side, qty=qty,
                            order_type=order_type, stop_price=stop_price, close_position=stop_price is not None,
                            oco=oco, target_id=target_id, reason=reason, market_ns=ts, reduce_only=reduce_only)
        self._emit(rejection(order.id, order, DRY_RUN) if self.dry_run else order)

    def _submit_limit(self, target: TargetPosition, coid: str, side: Side, qty: Decimal, cfg: VenueConfig,
                      ts: int) -> None:
        """A limit order resting `limit_offset_bps` from the target's price (below it to buy), on the tick,
        decided at market time `ts`."""
        offset = cfg.limit_offset_bps / BPS
        limit = round_price(target.price * (1 - offset if side == "buy" else 1 + offset), cfg.tick_size, side)
        expire = None if cfg.limit_ttl_s is None else ts + int(cfg.limit_ttl_s * 1_000_000_000)
        order = SubmitOrder(id=coid, ts_event=ts, client=target.client, venue=target.venue,
                            symbol=target.symbol, side=side, qty=qty, order_type="limit", limit_price=limit,
                            target_id=target.id, reason=target.reason, market_ns=ts,
                            time_in_force="GTC" if expire is None else "GTD", expire_ns=expire)
        self._emit(rejection(order.id, order, DRY_RUN) if self.dry_run else order)

    def _cancel(self, open_order: OpenOrder, reason: str, market_ns: int | None = None) -> None:
        open_order.canceling = True
        o = open_order.order
        self._emit(CancelOrder(id=f"{o.id}.cancel", ts_event=self.clock.now_ns(), client_order_id=o.id,
                               client=o.client, venue=o.venue, symbol=o.symbol, reason=reason, market_ns=market_ns))

    def _cancel_restricted(self, reason: str) -> None:
        """Every working order in a halted scope, and in a reducing one each that would add
        exposure; brackets stay, they only close."""
        for open_order in list(self.book.open.values()):
            o = open_order.order
            if o.order_type in PROTECTIVE:
                continue
            state, _ = self._scopes.of(o.client, o.venue, o.symbol)
            if state == HALTED or (state != ACTIVE and self._adds(open_order)):
                self._cancel(open_order, reason)

    def _adds(self, open_order: OpenOrder) -> bool:
        o = open_order.order
        position = self.book.position((o.client, o.venue, o.symbol))
        return not reduces(position + open_order.signed_remaining, position)

    def _cancel_all(self) -> None:
        """The kill switch: every working order that could add exposure; brackets stay, they only close,
        and so do orders that reduce the position (the planning counts a working market order as done).
        A market whose every working order adds and that has no bracket gets one CancelAllOrders, which
        the shadow venue carries out at once and answers with one OrdersCanceled per 1,000 orders; any
        other, a CancelOrder per such order."""
        adding: dict[Key, list[OpenOrder]] = {}
        keep: set[Key] = set()  # markets with a bracket or an order that reduces
        for open_order in self.book.open.values():
            o = open_order.order
            key = (o.client, o.venue, o.symbol)
            if o.order_type in PROTECTIVE or not self._adds(open_order):
                keep.add(key)
            else:
                adding.setdefault(key, []).append(open_order)
        now = self.clock.now_ns()
        for (client, venue, symbol), orders in adding.items():
            if (client, venue, symbol) in keep:
                for open_order in orders:
                    self._cancel(open_order, "kill_switch")
            else:  # an id of its own per flip: each one lands, whatever the dedup window
                self._emit(CancelAllOrders(id=f"{client}.{venue}.{symbol}.kill_switch.{now}", ts_event=now,
                                           client=client, venue=venue, symbol=symbol, reason="kill_switch"))

    def _emit(self, event: Event) -> None:
        if self.book.apply(event) and self.durable:
            self._record(event)
        self.out.publish(event)

    def _record(self, entry: Event) -> None:
        if self._started:
            self.out.effect(self._entry_record(entry))
        else:
            self._tail.append(entry)

    def _entry_record(self, entry: Event) -> RecordOrderEntry:
        coid = entry.id if type(entry) is SubmitOrder else entry.client_order_id  # type: ignore[attr-defined]
        open_order = self.book.open.get(coid)
        key = (entry.client, entry.venue, entry.symbol)  # type: ignore[attr-defined]
        return RecordOrderEntry(entry, None if open_order is None else open_order.remaining,  # type: ignore[arg-type]
                                self.book.position(key))

    # --- snapshots (bosun/runtime/replicas.py): the book and the replay's tail

    def replayed_part(self) -> bytes:
        return replayed.encode(replayed.ExecutionPart(version=replayed.VERSION, book=self.book.state(),
                                                      tail=list(self._tail)))

    def restore_replayed(self, part: bytes, after: int) -> None:
        state = replayed.decode(part, replayed.ExecutionPart)
        self.book = OrderBook.restored(state.book)
        if self.durable:
            self._tail.extend(state.tail)
        self._replayed_through = after

    # --- health

    def status(self) -> dict[str, object]:
        return {
            "trading_enabled": self.trading_enabled,
            "dry_run": self.dry_run,
            "capped_live": self.capped_live,
            "open_orders": {coid: {"client": o.order.client, "venue": o.order.venue, "symbol": o.order.symbol,
                                   "side": o.order.side, "type": o.order.order_type, "remaining": str(o.remaining),
                                   "reason": o.order.reason}
                            for coid, o in self.book.open.items()},
            "positions": self.book.positions.open(),
            "fills": self.book.fills,
            "fills_by_client": dict(sorted(self.book.fills_by_client.items())),
            "rejects_by_client": dict(sorted(self.book.rejects_by_client.items())),
            "position_disagreements": self.disagreements,
            "scopes": self._scopes.snapshot(),
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
