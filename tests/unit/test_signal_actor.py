"""SignalActor on the in-process bus: signals and per-client targets on a change of
direction, nothing otherwise, deterministic ids, equity sizing, stop/take prices."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bosun.runtime.clock import SimClock
from bosun.apps.config import ClientConfig, Config
from services.execution.config import VenueConfig
from services.signal.config import SizingConfig, StrategyConfig
from bosun.runtime.inproc import InProcessBus
from proto.events import Bar, Event, PositionChanged, SignalDetected, TargetPosition
from services.signal.actor import SignalActor
from services.signal.strategies import StrategyError

D = Decimal
MIN = 60_000_000_000


def bar(i: int, close: str, symbol: str = "BTCUSDT") -> Bar:
    c = D(close)
    return Bar(id=f"binance.{symbol}.1m.{i}", ts_event=(i + 1) * MIN, venue="binance", symbol=symbol,
               interval="1m", ts_open=i * MIN, open=c, high=c, low=c, close=c, volume=D(1))


def position(client: str, realized: str, unrealized: str, symbol: str = "BTCUSDT") -> PositionChanged:
    return PositionChanged(id=f"{client}.{symbol}.1", ts_event=MIN, client=client, venue="binance", symbol=symbol,
                           qty=D(1), avg_price=D(100), realized_pnl=D(realized), unrealized_pnl=D(unrealized),
                           fees=D(0), fill_id="f1")


ALICE = ClientConfig(id="alice", strategies=["sma"], sizing=SizingConfig(kind="fixed", qty=D("0.5")))
BOB = ClientConfig(id="bob", capital=D(1000), strategies=["sma"],
                   sizing=SizingConfig(kind="equity_fraction", fraction=D("0.5")),
                   venues={"binance": VenueConfig(step_size=D("0.001"))})
CAROL = ClientConfig(id="carol", strategies=[])  # follows nothing


def config(*strategies: StrategyConfig, clients: tuple[ClientConfig, ...] = (ALICE, BOB, CAROL)) -> Config:
    return Config(clients=list(clients), strategies=list(strategies))


SMA = StrategyConfig(name="sma", params={"fast": 1, "slow": 2})


class Recorder:
    """What the actor published (its inputs, bars and positions, left out)."""

    def __init__(self, bus: InProcessBus) -> None:
        self.events: list[Event] = []
        bus.tap(lambda subject, message: isinstance(message, (SignalDetected, TargetPosition))
                and self.events.append(message))

    def of(self, kind: type) -> list:
        return [e for e in self.events if isinstance(e, kind)]

    def take(self, kind: type) -> list:
        found = self.of(kind)
        self.events.clear()
        return found


def start(cfg: Config) -> tuple[InProcessBus, SignalActor, Recorder]:
    bus = InProcessBus()
    actor = bus.attach(SignalActor(SimClock(), bus, cfg.signal_config()))
    return bus, actor, Recorder(bus)


def feed(bus: InProcessBus, *bars: Bar) -> None:
    for b in bars:
        bus.publish(b)
    bus.drain()


def test_a_flip_emits_one_signal_and_one_target_per_following_client() -> None:
    bus, actor, rec = start(config(SMA))
    feed(bus, bar(0, "100"), bar(1, "100"))  # slow ready, fast == slow: no direction yet
    assert rec.take(SignalDetected) == []
    feed(bus, bar(2, "110"))  # fast 110 > slow 105: long
    signals, targets = rec.of(SignalDetected), rec.of(TargetPosition)
    assert signals == [SignalDetected(id="sma.binance.BTCUSDT.1m.2", ts_event=3 * MIN, strategy="sma",
                                      venue="binance", symbol="BTCUSDT", direction=1, price=D(110))]
    assert [(t.id, t.client, t.qty) for t in targets] == [
        ("alice.sma.binance.BTCUSDT.1m.2", "alice", D("0.5")),
        ("bob.sma.binance.BTCUSDT.1m.2", "bob", D("4.545")),  # 0.5 * 1000 / 110 = 4.5454... floored to 0.001
    ]
    assert all(t.ts_event == 3 * MIN and t.price == D(110) and t.strategy == "sma" and t.reason == "signal"
               and t.stop_loss is None and t.take_profit is None for t in targets)
    assert actor.status()["directions"] == {"sma": 1}


def test_unchanged_direction_emits_nothing_and_the_next_flip_does() -> None:
    bus, _, rec = start(config(SMA))
    feed(bus, bar(0, "100"), bar(1, "110"))  # long at bar 1
    rec.take(SignalDetected)
    feed(bus, bar(2, "120"), bar(3, "120"))  # still long, then equal: unchanged
    assert rec.events == []
    feed(bus, bar(4, "90"))  # fast 90 < slow 105: short
    assert [s.direction for s in rec.of(SignalDetected)] == [-1]
    assert [(t.client, t.qty) for t in rec.of(TargetPosition)] == [("alice", D("-0.5")), ("bob", D("-5.555"))]


def test_long_only_first_flat_direction_emits_nothing() -> None:
    bus, actor, rec = start(config(StrategyConfig(name="sma", params={"fast": 1, "slow": 2}, long_only=True)))
    feed(bus, bar(0, "100"), bar(1, "90"))  # below: flat, which is where it already is
    assert rec.events == []
    feed(bus, bar(2, "95"), bar(3, "80"))  # long, then flat again
    assert [s.direction for s in rec.of(SignalDetected)] == [1, 0]
    assert [t.qty for t in rec.of(TargetPosition) if t.client == "alice"] == [D("0.5"), 0]
    assert actor.status()["directions"] == {"sma": 0}


def test_equity_includes_realized_and_unrealized_pnl_per_position() -> None:
    bus, actor, rec = start(config(SMA))
    bus.publish(position("bob", realized="100", unrealized="-50"))
    bus.publish(position("bob", realized="20", unrealized="0", symbol="ETHUSDT"))
    bus.publish(position("bob", realized="120", unrealized="-40"))  # replaces the first BTCUSDT one
    bus.publish(position("mallory", realized="999", unrealized="0"))  # not a configured client
    bus.drain()
    assert actor.equity("bob") == D(1000 + 80 + 20)  # no bar yet: the unrealized PnL of the last fill
    feed(bus, bar(0, "100"), bar(1, "110"))
    bob = next(t for t in rec.of(TargetPosition) if t.client == "bob")
    # BTCUSDT marked at 110: 120 + 1 x (110 - 100); ETHUSDT has no bar: 20 + 0
    assert actor.equity("bob") == D(1000 + 130 + 20)
    assert bob.qty == D("5.227")  # 0.5 * 1150 / 110 = 5.2272..., down to the step


def test_equity_marks_open_positions_at_the_newest_close_not_the_last_fill() -> None:
    bus, actor, rec = start(config(SMA))
    feed(bus, bar(0, "100"), bar(1, "90"))  # the fill-time view: long 1 at 100, unrealized 0
    bus.publish(position("bob", realized="0", unrealized="0"))
    feed(bus, bar(2, "80"))
    assert actor.equity("bob") == D(1000 - 20)  # 1 x (80 - 100), not the 0 frozen at the fill
    rec.take(TargetPosition)
    feed(bus, bar(3, "130"))  # a flip up: sized from 1000 + 1 x (130 - 100)
    bob = next(t for t in rec.of(TargetPosition) if t.client == "bob")
    assert bob.qty == D("3.961")  # 0.5 * 1030 / 130 = 3.9615...


def test_ids_are_deterministic_across_runs() -> None:
    bars = [bar(i, c) for i, c in enumerate(["100", "101", "99", "99", "102", "98"])]
    runs = []
    for _ in range(2):
        bus, _, rec = start(config(SMA))
        feed(bus, *bars)
        runs.append(rec.events)
    assert runs[0] == runs[1] and len(runs[0]) == 3 * 4  # 4 flips, 1 signal + 2 targets each
    assert len({e.id for e in runs[0]}) == len(runs[0])


def test_stop_loss_and_take_profit_when_configured() -> None:
    sma = StrategyConfig(name="sma", params={"fast": 1, "slow": 2}, stop_k=D(2), take_k=D(3), returns_window=2)
    bus, _, rec = start(config(sma))
    feed(bus, bar(0, "100"), bar(1, "100"), bar(2, "110"))
    # returns over the last 2: 0 and 0.1 -> sample stdev sqrt(0.005) = 0.070710678...
    sigma = D("0.005").sqrt()
    (signal,) = rec.of(SignalDetected)
    assert abs(signal.stop_distance - 2 * sigma * 110) < D("1e-12")  # 15.5563...
    assert abs(signal.take_distance - 3 * sigma * 110) < D("1e-12")  # 23.3345...
    alice = next(t for t in rec.of(TargetPosition) if t.client == "alice")
    assert (alice.stop_loss, alice.take_profit) == (D("94.44"), D("133.33"))  # tick 0.01, half-even
    rec.take(SignalDetected)
    feed(bus, bar(3, "100"))  # short: returns 0.1 and -0.0909..., stop above, take below
    short = next(t for t in rec.of(TargetPosition) if t.client == "alice")
    assert short.qty == D("-0.5") and short.stop_loss > D(100) > short.take_profit


def test_no_stops_until_the_returns_window_is_full() -> None:
    sma = StrategyConfig(name="sma", params={"fast": 1, "slow": 2}, stop_k=D(2), returns_window=5)
    bus, _, rec = start(config(sma))
    feed(bus, bar(0, "100"), bar(1, "110"))
    (signal,) = rec.of(SignalDetected)
    assert signal.stop_distance is None and all(t.stop_loss is None for t in rec.of(TargetPosition))


def test_a_client_without_the_strategys_venue_is_skipped() -> None:
    dave = ClientConfig(id="dave", strategies=["sma"], venues={"bybit": VenueConfig()})
    bus, actor, rec = start(config(SMA, clients=(ALICE, dave)))
    feed(bus, bar(0, "100"), bar(1, "110"))
    assert [t.client for t in rec.of(TargetPosition)] == ["alice"]
    assert actor.status()["skipped_no_venue"] == ["dave/sma"]


def test_strategies_on_one_symbol_keep_their_own_state_and_other_symbols_are_ignored() -> None:
    quick = StrategyConfig(name="quick", params={"fast": 1, "slow": 2})
    slow = StrategyConfig(name="slow", params={"fast": 1, "slow": 3})
    # one client per strategy: one client's targets for one market come from one strategy
    followers = (ClientConfig(id="alice", strategies=["quick"]), ClientConfig(id="bob", strategies=["slow"]))
    bus, actor, rec = start(config(quick, slow, clients=followers))
    feed(bus, bar(0, "100"), bar(1, "110"))  # quick: 110 > 105 long; slow: not ready
    assert [(s.strategy, s.direction) for s in rec.take(SignalDetected)] == [("quick", 1)]
    feed(bus, bar(2, "105"))  # quick: 105 < 107.5 short; slow: 105 > 105 - no, equal: unchanged
    assert [(s.strategy, s.direction) for s in rec.take(SignalDetected)] == [("quick", -1)]
    feed(bus, bar(3, "120"))  # quick: 120 > 112.5 long; slow: 120 > 111.67 long
    assert [(s.strategy, s.direction) for s in rec.take(SignalDetected)] == [("quick", 1), ("slow", 1)]
    actor.on_bar(bar(4, "1", symbol="ETHUSDT"))  # nobody trades ETHUSDT: ignored
    feed(bus, bar(5, "1", symbol="ETHUSDT"))
    assert rec.events == []
    assert actor.status()["directions"] == {"quick": 1, "slow": 1}


def test_inputs_cover_each_market_once_and_positions() -> None:
    eth = StrategyConfig(name="eth", symbol="ETHUSDT", params={"fast": 1, "slow": 2})
    _, actor, _ = start(config(SMA, StrategyConfig(name="sma2", params={"fast": 2, "slow": 3}), eth,
                               clients=(ALICE,)))
    assert [i.subject for i in actor.inputs()] == ["md.bar.binance.BTCUSDT", "md.bar.binance.ETHUSDT",
                                                   "position.changed.>"]


def test_a_bad_strategy_entry_fails_at_construction_naming_it() -> None:
    bad = StrategyConfig(name="broken", params={"fast": 3, "slow": 2})
    with pytest.raises(StrategyError, match=r"\[\[strategies\]\] 'broken': .*'fast' \(3\) must be smaller"):
        SignalActor(SimClock(), InProcessBus(), config(bad, clients=()).signal_config())
    tiny = StrategyConfig(name="tiny", params={"fast": 1, "slow": 2}, stop_k=D(1), returns_window=1)
    with pytest.raises(StrategyError, match="'tiny': returns_window must be >= 2"):
        SignalActor(SimClock(), InProcessBus(), config(tiny, clients=()).signal_config())


def test_levels_in_percent_or_sd_per_strategy_and_a_clients_own_per_leg() -> None:
    from services.signal.config import LevelsConfig

    sma = StrategyConfig(name="sma", params={"fast": 1, "slow": 2}, returns_window=2,
                         levels=LevelsConfig(stop_loss_pct=D(2), take_profit_sd=D(3)))
    bob = ClientConfig(id="bob", strategies=["sma"], levels=LevelsConfig(take_profit_pct=D(5)))
    bus, _, rec = start(config(sma, clients=(ALICE, bob)))
    feed(bus, bar(0, "100"), bar(1, "100"), bar(2, "110"))
    by_client = {t.client: t for t in rec.of(TargetPosition)}
    # alice: the strategy's: stop 2% under 110 = 107.80; take-profit 3 sd over it = 133.33
    assert (by_client["alice"].stop_loss, by_client["alice"].take_profit) == (D("107.80"), D("133.33"))
    # bob: his own take-profit, 5% over 110; the strategy's stop
    assert (by_client["bob"].stop_loss, by_client["bob"].take_profit) == (D("107.80"), D("115.50"))


@pytest.mark.parametrize("levels, problem", [
    ({"stop_loss_sd": "2", "stop_loss_pct": "1"}, "stop_loss_sd and stop_loss_pct both set"),
    ({"take_profit_pct": "NaN"}, "take_profit_pct must be a finite number > 0"),
    ({"stop_loss_pct": "100"}, "stop_loss_pct must be < 100"),
])
def test_levels_that_cannot_be_are_refused_by_name(levels: dict, problem: str) -> None:
    from services.signal.config import LevelsConfig

    with pytest.raises(ValueError, match=problem):
        LevelsConfig(**{k: D(v) for k, v in levels.items()})
    with pytest.raises(ValueError, match="set each leg once"):
        StrategyConfig(name="s", stop_k=D(1), levels=LevelsConfig(stop_loss_pct=D(1)))
