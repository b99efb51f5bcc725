"""The signal service's logic: bars -> strategies -> SignalDetected on every change of
direction -> one TargetPosition per client that follows the strategy, sized per client.

A client that follows a strategy but has no venue of that strategy's venue configured is
skipped for that strategy (it cannot be sized: no step size); it shows in `status()`."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from decimal import Decimal
from functools import partial

from bosun.model.equity import marked_equity
from bosun.runtime.actor import Actor, Delivery, Input, Outbox, event_input
from bosun.runtime.clock import Clock
from proto import subjects as sj
from proto.events import Bar, PositionChanged, SignalDetected, TargetPosition
from services.signal import sizing
from services.signal.config import Follower, SignalConfig, StrategyConfig
from services.signal.strategies import Strategy, StrategyError, build_strategy


class _Running:
    """One [[strategies]] entry at run time: its strategy instance, current direction,
    the clients that follow it, and (only when stops are configured) recent closes."""

    __slots__ = ("config", "strategy", "direction", "clients", "closes", "levels", "client_levels")

    def __init__(self, config: StrategyConfig, clients: list[Follower]) -> None:
        self.config = config
        try:
            self.strategy: Strategy = build_strategy(config.kind, config.params, config.long_only)
        except StrategyError as exc:
            raise StrategyError(f"[[strategies]] {config.name!r}: {exc}") from None
        self.direction = 0  # flat until the strategy says otherwise
        self.clients = clients
        self.levels = config.own_levels()
        # Each client's levels for this strategy: its own, leg by leg over the strategy's.
        self.client_levels = {c.id: self.levels if c.levels is None else c.levels.over(self.levels) for c in clients}
        wants_stops = self.levels.uses_sd or any(levels.uses_sd for levels in self.client_levels.values())
        if wants_stops and config.returns_window < 2:
            raise StrategyError(f"[[strategies]] {config.name!r}: returns_window must be >= 2 "
                                f"for stop_k/take_k (levels in sd), got {config.returns_window}")
        self.closes: deque[Decimal] | None = deque(maxlen=config.returns_window + 1) if wants_stops else None


class _Market:
    """One (venue, symbol) that strategies trade: their _Running entries, and the newest bar
    close (what positions there are marked at; None before the first bar)."""

    __slots__ = ("running", "close")

    def __init__(self) -> None:
        self.running: list[_Running] = []
        self.close: Decimal | None = None


class SignalActor(Actor):
    name = "signal"

    def __init__(self, clock: Clock, out: Outbox, config: SignalConfig) -> None:
        super().__init__(clock, out)
        self._capital = {c.id: c.capital for c in config.clients}
        self._running: dict[str, _Running] = {}
        # One lookup per bar finds both the strategies to run and the mark to update.
        self._markets: dict[tuple[str, str], _Market] = {}
        for sc in config.strategies:
            running = _Running(sc, [c for c in config.clients if sc.name in c.strategies])
            self._running[sc.name] = running
            self._markets.setdefault((sc.venue, sc.symbol), _Market()).running.append(running)
        # client -> (venue, symbol) -> its newest PositionChanged (qty, avg_price, realized_pnl)
        self._positions: dict[str, dict[tuple[str, str], PositionChanged]] = {c: {} for c in self._capital}
        self._skipped: set[tuple[str, str]] = set()  # (client, strategy) without the venue

    def inputs(self) -> Sequence[Input]:
        bars = [event_input(f"md.bar.{venue}.{symbol}", Bar, self.on_bar, Delivery.DURABLE)
                for venue, symbol in self._markets]
        return [*bars, event_input(sj.POSITIONS, PositionChanged, self.on_position_changed, Delivery.LATEST)]

    # --- handlers

    def on_bar(self, bar: Bar) -> None:
        market = self._markets.get((bar.venue, bar.symbol))
        if market is None:  # no strategy trades it (the bus delivers only the markets of `inputs`)
            return
        market.close = bar.close  # before sizing: equity marks at this close
        for running in market.running:
            if running.closes is not None:
                running.closes.append(bar.close)
            direction = running.strategy.on_bar(bar)
            if direction is None or direction == running.direction:
                continue
            if direction not in (-1, 0, 1):
                raise StrategyError(f"strategy {running.config.name!r} returned direction {direction!r}; "
                                    f"expected -1, 0, +1 or None")
            running.direction = direction
            self._signal(running, bar, direction)

    def on_position_changed(self, event: PositionChanged) -> None:
        positions = self._positions.get(event.client)
        if positions is not None:  # positions of clients not configured here do not size anything
            positions[(event.venue, event.symbol)] = event

    # --- decisions

    def equity(self, client: str) -> Decimal:
        """Capital plus, per position, realized PnL and qty x (mark - avg_price) at the newest bar
        close; a market without a bar seen yet keeps the unrealized PnL of its last fill."""
        return marked_equity(self._capital[client], self._positions[client].values(), self._mark)

    def _mark(self, venue: str, symbol: str) -> Decimal | None:
        market = self._markets.get((venue, symbol))
        return None if market is None else market.close

    def _signal(self, running: _Running, bar: Bar, direction: int) -> None:
        sc = running.config
        closes = running.closes
        price = bar.close
        # No sigma without stops, nor before the returns window is full: then there are no
        # distances and no protective prices, and the arithmetic for them is skipped.
        sigma = sizing.stdev_of_returns(closes) if closes is not None and len(closes) == closes.maxlen else None
        stop = take = None
        if sigma is not None:
            stop = sizing.price_distance(running.levels.stop_loss_sd, sigma, price)
            take = sizing.price_distance(running.levels.take_profit_sd, sigma, price)
        signal = SignalDetected(
            id=f"{sc.name}.{bar.id}", ts_event=bar.ts_event, strategy=sc.name, venue=sc.venue,
            symbol=sc.symbol, direction=direction, price=price, stop_distance=stop, take_distance=take)
        self.out.publish(signal)
        for client in running.clients:
            grid = client.grids.get(sc.venue)
            if grid is None:
                self._skipped.add((client.id, sc.name))
                continue
            stop_loss, take_profit = sizing.protective_prices(direction, price, running.client_levels[client.id], sigma,
                                                              grid.tick_size)
            self.out.publish(TargetPosition(
                id=f"{client.id}.{signal.id}", ts_event=bar.ts_event, client=client.id, venue=sc.venue,
                symbol=sc.symbol, strategy=sc.name, price=price, reason="signal",
                qty=sizing.target_qty(direction, client.sizing, equity=partial(self.equity, client.id),
                                      price=price, step_size=grid.step_size),
                stop_loss=stop_loss, take_profit=take_profit))

    def status(self) -> dict[str, object]:
        return {
            "directions": {name: r.direction for name, r in self._running.items()},
            "equity": {client: str(self.equity(client)) for client in self._capital},
            "skipped_no_venue": sorted(f"{client}/{strategy}" for client, strategy in self._skipped),
        }
