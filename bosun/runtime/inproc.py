"""The in-process bus: deterministic, single-threaded, FIFO.

Publishing appends to one queue; `drain()` hands each message, in publish order, to every
handler whose filter matches its subject, in attach order. KV subjects (`$KV.<bucket>.<key>`)
also keep their newest value, handed to actors that attach later, as a KV watch would.
Effects go at once to the handlers given with `on_effect` (a backtest has no edges: none)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from functools import partial
from typing import Any

from bosun.runtime.actor import Actor, Delivery, Effect, KvEntry
from proto import subjects as sj
from proto import events as ev


_subject_for = sj.subject_for  # a module global: one lookup less per message


class BusOverflow(RuntimeError):
    pass


class InProcessBus:
    def __init__(self, max_pending: int = 1_000_000) -> None:
        self._max_pending = max_pending
        self._queue: deque[tuple[str, Any]] = deque()
        # The same queue, read-only by convention: empty (falsy) when a drain would deliver nothing,
        # which a caller feeding many messages that mostly publish nothing tests before draining.
        self.pending: deque[tuple[str, Any]] = self._queue
        self._subs: list[tuple[str, Callable[[Any], None]]] = []
        self._routes: dict[str, tuple[Callable[[Any], None], ...]] = {}
        self._kv: dict[str, Any] = {}
        self._taps: list[Callable[[str, Any], None]] = []
        self._effect_handlers: list[Callable[[Effect], None]] = []

    # --- wiring

    def subscribe(self, pattern: str, handler: Callable[[Any], None]) -> None:
        self._subs.append((pattern, handler))
        self._routes.clear()
        if pattern.startswith("$KV."):
            for subject, value in self._kv.items():
                if sj.matches(pattern, subject):
                    handler(value)

    def attach(self, actor: Actor) -> Actor:
        for inp in actor.inputs():
            self.subscribe(inp.subject, inp.handler)
        actor.on_start()
        return actor

    def tap(self, observer: Callable[[str, Any], None]) -> None:
        """See every message as it is delivered (tests, recorders): each route calls it first, with the subject."""
        self._taps.append(observer)
        self._routes.clear()

    def on_effect(self, handler: Callable[[Effect], None]) -> None:
        self._effect_handlers.append(handler)

    # --- Outbox

    def publish(self, message: ev.Event) -> None:
        # Every message of a backtest comes through here: kept to one call.
        subject = _subject_for(message)
        queue = self._queue
        if len(queue) >= self._max_pending:
            raise self._overflow(subject)
        if subject[0] == "$":  # a KV put, `$KV.<bucket>.<key>`: the bucket keeps the newest value
            self._kv[subject] = message
        queue.append((subject, message))

    def set_trading_enabled(self, enabled: bool) -> None:
        if len(self._queue) >= self._max_pending:
            raise self._overflow(sj.TRADING_ENABLED)
        self._kv[sj.TRADING_ENABLED] = enabled
        self._queue.append((sj.TRADING_ENABLED, enabled))

    def put_control(self, key: str, value: bytes) -> None:
        """A put of `key` in KV `control`; its readers get it as a KvEntry (`kv_input`)."""
        subject = f"$KV.{sj.CONTROL_BUCKET}.{key}"
        if len(self._queue) >= self._max_pending:
            raise self._overflow(subject)
        self._kv[subject] = entry = KvEntry(key, value)
        self._queue.append((subject, entry))

    def effect(self, effect: Effect) -> None:
        for handler in self._effect_handlers:
            handler(effect)

    def _overflow(self, subject: str) -> BusOverflow:
        return BusOverflow(f"in-process bus holds {self._max_pending} undelivered messages; "
                           f"a handler is publishing in a loop? last subject {subject}")

    def close(self) -> None:
        """Forget every subscription, tap, KV value and pending message. The bus holds its actors'
        handlers (bound methods) and they hold the bus, a cycle only the cyclic GC would free:
        closed, a finished run's state goes at once, not in a later collection that a next run
        (a sweep's) pays for."""
        for wiring in (self._queue, self._subs, self._routes, self._kv, self._taps, self._effect_handlers):
            wiring.clear()

    # --- delivery

    def kv(self, subject: str) -> Any:
        return self._kv.get(subject)

    def drain(self) -> None:
        """Deliver until nothing is pending. (No count: a backtest drains after every bar, and a tap
        tells a test what was delivered.)"""
        queue, routes = self._queue, self._routes
        popleft = queue.popleft
        while queue:
            subject, message = popleft()
            try:  # cheaper than .get on the hit, which is every message but a subject's first
                handlers = routes[subject]
            except KeyError:
                handlers = routes[subject] = self._route(subject)
            for handler in handlers:
                handler(message)

    def _route(self, subject: str) -> tuple[Callable[[Any], None], ...]:
        """The taps (given the subject), then the handlers whose filter matches, in attach order: a tap
        is a handler of every route, so delivery tests nothing per message."""
        return (*(partial(observer, subject) for observer in self._taps),
                *(h for p, h in self._subs if sj.matches(p, subject)))


__all__ = ["InProcessBus", "BusOverflow", "Delivery"]
