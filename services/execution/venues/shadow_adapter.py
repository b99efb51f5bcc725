"""The shadow venues as an actor: execution's commands in, Order* events out, fills against
the market data it reads itself.

Market data reaches it on one input (`md.>`, over NATS one consumer): bars, trades and quotes
come in the order ingest published them, as a backtest feeds them (on a consumer each, a quote
could overtake the trade before it). Commands come on another input, so over NATS a command can
arrive before the bar it was decided at, or after later bars. Both are resolved here, once, by time:
a command carrying `market_ns` (the market time it was decided at) waits until the venue's
market data for its symbol has reached that time, and is applied after every event up to it
and before any later one; one that arrives late fills where it would have (see ShadowVenue).
So a venue sees market data and commands in the order they were decided, whatever order
they are delivered in, and paper fills equal the backtest's.

After a restart the working orders and positions come back from the order log (REPLAY: its
newest snapshot and the entries after it, see services/execution/replayed.py, or all of it);
commands in the log the venue never answered are carried out on start, and then it reports
what each venue holds (VenueStateReported) for execution to reconcile with."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from bosun.runtime.actor import Actor, Delivery, Input, Outbox, SnapshotError
from bosun.runtime.clock import Clock
from proto import codec
from proto import subjects as sj
from proto.events import (Bar, CancelAllOrders, CancelOrder, Event, ModifyOrder, OrderFilled, Quote, SubmitOrder,
                          Trade, VenueStateReported)
from services.execution import replayed
from services.execution.config import ExecutionConfig, VenueConfig
from services.execution.orders import rejection
from services.execution.venues.shadow import ShadowVenue

Command = SubmitOrder | CancelOrder | ModifyOrder | CancelAllOrders
CARRIED_OUT = frozenset((SubmitOrder, CancelOrder, ModifyOrder, CancelAllOrders, OrderFilled))  # after start


class ShadowAdapter(Actor):
    name = "shadow"

    def __init__(self, clock: Clock, out: Outbox, config: ExecutionConfig, max_deferred: int = 10_000,
                 max_recent: int = 10_000) -> None:
        super().__init__(clock, out)
        accounts: dict[str, dict[str, VenueConfig]] = {}  # venue -> client -> its terms there
        for client, venues in config.venues.items():
            for venue, cfg in venues.items():
                if cfg.kind == "shadow":
                    accounts.setdefault(venue, {})[client] = cfg
        self.venues = {venue: ShadowVenue(venue, clients, max_recent) for venue, clients in accounts.items()}
        self._accounts = {(client, venue) for venue, clients in accounts.items() for client in clients}
        self._terms = replayed.terms({(client, venue): cfg for venue, clients in accounts.items()
                                      for client, cfg in clients.items()})
        self._max_deferred = max_deferred
        self._deferred: dict[tuple[str, str], deque[Command]] = {}  # (venue, symbol) -> commands, in order
        self._started = False
        self._replayed_through = 0  # the ORDERS sequence a restored snapshot covers

    def inputs(self) -> Sequence[Input]:
        return [
            Input(sj.ORDERS, self.on_order_log, codec.decode_any, Delivery.REPLAY, after=self._replayed_through),
            Input(sj.MARKET_DATA, self.on_market_data, codec.decode_any, Delivery.LIVE),
        ]

    def on_start(self) -> None:
        self._started = True
        for venue in self.venues.values():
            for command in venue.unanswered():
                self._command(command)  # type: ignore[arg-type]
        now = self.clock.now_ns()
        for venue in self.venues.values():  # what each venue holds, for execution to reconcile with
            for (client, name, symbol), (orders, position) in sorted(venue.holdings().items()):
                self.out.publish(VenueStateReported(id=f"{name}.{client}.{symbol}.{now}", ts_event=now, client=client,
                                                    venue=name, symbol=symbol, open_orders=tuple(sorted(orders)),
                                                    position=position))

    # --- inputs

    def on_order_log(self, entry: Event) -> None:
        """The order log: commands to carry out (ours to answer when for a shadow account);
        before start, the history that rebuilds the venues."""
        kind = type(entry)
        if not self._started:
            if (getattr(entry, "client", None), getattr(entry, "venue", None)) in self._accounts:
                self.venues[entry.venue].replay(entry)  # type: ignore[attr-defined]
        elif kind not in CARRIED_OUT or (entry.client, entry.venue) not in self._accounts:  # type: ignore[attr-defined]
            return  # the echo of a venue's own answers, or another venue's business
        elif kind is OrderFilled:
            self.venues[entry.venue].on_fill(entry)  # type: ignore[attr-defined]
        else:
            self._command(entry)  # type: ignore[arg-type]

    def on_market_data(self, md: Event) -> None:
        """Bars, trades and quotes in stream order (one consumer under NATS); funding rates are not
        the venue's. A bar or trade is handled here, not dispatched: one call per bar, the hot path."""
        kind = type(md)
        if kind is not Bar and kind is not Trade:  # a bar first: one test for most events
            if kind is Quote:
                self.on_quote(md)  # type: ignore[arg-type]
            return
        venue = self.venues.get(md.venue)  # type: ignore[attr-defined]
        if venue is None:
            return
        if self._deferred:  # commands wait (over NATS, for market data to reach them): their own path
            self._market_data_releasing(venue, md)  # type: ignore[arg-type]
            return
        events = venue.on_market(md)
        if events:  # not a bare `for`: most bars answer nothing, and an iterator over nothing costs more than the test
            for event in events:
                self.out.publish(event)

    def _market_data_releasing(self, venue: ShadowVenue, md: Bar | Trade) -> None:
        """A bar or trade while commands wait: those due before it are applied first, then it, then
        those decided at its time."""
        waiting = self._deferred.get((md.venue, md.symbol))
        if waiting:  # decided before this event's time: due before it
            self._release(venue, md, waiting, md.ts_event - 1)
        for event in venue.on_market(md):
            self.out.publish(event)
        if waiting:  # decided at this event's time: due right after it
            self._release(venue, md, waiting, md.ts_event)

    def on_quote(self, quote: Quote) -> None:
        """Quotes release no waiting command (bars and trades do): one that comes after them meets
        them as a late order does, the same in a backtest and on paper."""
        venue = self.venues.get(quote.venue)
        if venue is not None:
            events = venue.on_quote(quote)
            if events:  # most quotes answer nothing (see on_market_data)
                for event in events:
                    self.out.publish(event)

    def quiet(self) -> bool:
        """Whether no quote could fill, cancel or release anything now: no command waits, and every
        venue is quiet (ShadowVenue.quiet)."""
        if self._deferred:
            return False
        for venue in self.venues.values():
            if not venue.quiet():
                return False
        return True

    # --- the VenueAdapter protocol

    def on_submit_order(self, command: SubmitOrder) -> None:
        self._command(command)

    def on_cancel_order(self, command: CancelOrder) -> None:
        self._command(command)

    def on_modify_order(self, command: ModifyOrder) -> None:
        self._command(command)

    def on_cancel_all_orders(self, command: CancelAllOrders) -> None:
        self._command(command)

    # --- ordering by market time

    def _command(self, command: Command) -> None:
        venue = self.venues[command.venue]
        waiting = self._deferred.get((command.venue, command.symbol)) if self._deferred else None  # the usual: none
        # A submit is due at its decision (ShadowVenue.due_ns, without the call: most commands are submits).
        decided = command.market_ns if type(command) is SubmitOrder else venue.due_ns(command)
        if not waiting:
            if decided is None or venue.reached(command.symbol, decided):
                if type(command) is SubmitOrder:  # most commands: answered here, without _apply's dispatch (a call)
                    for event in venue.submit(command):
                        self.out.publish(event)
                else:
                    self._apply(venue, command)
                return
            waiting = self._deferred[(command.venue, command.symbol)] = deque()
        if len(waiting) >= self._max_deferred:
            if type(command) is SubmitOrder:
                self.out.publish(rejection(command.id, command, (
                    f"{self._max_deferred} commands already wait for {command.symbol}'s market data to reach "
                    f"their decision time on shadow venue {command.venue}: is its market data flowing?")))
                return
            self._apply(venue, command)  # a cancel is never held back by a full queue
            return
        waiting.append(command)  # behind what waits already: commands keep their order

    def _release(self, venue: ShadowVenue, md: Bar | Trade, waiting: deque[Command], until_ns: int) -> None:
        """Apply the waiting commands due at or before `until_ns`, in order."""
        while waiting:
            decided = venue.due_ns(waiting[0])
            if decided is not None and decided > until_ns:
                return
            self._apply(venue, waiting.popleft())
        del self._deferred[(md.venue, md.symbol)]  # none left: the hot path skips the lookup

    def _apply(self, venue: ShadowVenue, command: Command) -> None:
        kind = type(command)
        if kind is SubmitOrder:
            events = venue.submit(command)  # type: ignore[arg-type]
        elif kind is CancelOrder:
            events = venue.cancel(command)  # type: ignore[arg-type]
        elif kind is ModifyOrder:
            events = venue.modify(command)  # type: ignore[arg-type]
        else:
            events = venue.cancel_all(command)  # type: ignore[arg-type]
        for event in events:
            self.out.publish(event)

    # --- snapshots (bosun/runtime/replicas.py): each venue as the replay left it

    def replayed_part(self) -> bytes:
        return replayed.encode(replayed.ShadowPart(version=replayed.VERSION, accounts=sorted(self._accounts),
                                                   terms=self._terms,
                                                   venues=[v.replayed() for v in self.venues.values()]))

    def restore_replayed(self, part: bytes, after: int) -> None:
        state = replayed.decode(part, replayed.ShadowPart, self._accounts)
        if state.terms != self._terms:
            raise SnapshotError("taken with other terms for the shadow accounts (fees, tick, step, latency, fill "
                                "model...) than configured now")
        for venue_state in state.venues:
            self.venues[venue_state.venue].restore(venue_state)
        self._replayed_through = after

    def status(self) -> dict[str, object]:
        return {
            "working_orders": {name: venue.working_orders() for name, venue in self.venues.items()},
            "waiting_commands": sum(len(q) for q in self._deferred.values()),
        }
