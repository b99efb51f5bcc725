"""Capped-live mode: execution's live adapter refuses any order above the caps, whatever risk
approved, naming the cap; `bosun status` shows the banner. On the in-process bus."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from bosun.apps import control
from bosun.apps.config import ClientConfig, Config, parse
from bosun.runtime.clock import SimClock
from bosun.runtime.config import ConfigError
from bosun.runtime.inproc import InProcessBus
from proto.events import Event, OrderFilled, OrderRejected, PriceSnapshot, SubmitOrder
from services.execution.actor import ExecutionActor
from services.execution.config import LiveCaps, VenueConfig
from services.execution.venues.live import LiveAdapter, PlaceOrder

T0 = 1_727_751_600_000_000_000
CAPS = LiveCaps(capped=True, max_order_notional=D(1000), max_position=D("0.02"))


def capped(caps: LiveCaps = CAPS) -> Config:
    return Config(mode="live", strategies=[], live=caps,
                  clients=[ClientConfig(id="alice", venues={"binance": VenueConfig(kind="live")})])


class Venue:
    """A capped live adapter on its own bus: what it publishes and which effects it asks for."""

    def __init__(self, price: str | None = "40000") -> None:
        self.bus, self.effects, self.published = InProcessBus(), [], []
        self.bus.on_effect(self.effects.append)
        self.bus.tap(lambda _s, m: self.published.append(m) if isinstance(m, OrderRejected) else None)
        self.adapter = self.bus.attach(LiveAdapter(SimClock(T0), self.bus, capped().execution_config()))
        if price is not None:
            self.bus.publish(PriceSnapshot(id=f"p{T0}", ts_event=T0, venue="binance", symbol="BTCUSDT",
                                           price=D(price)))
            self.bus.drain()

    def log(self, event: Event) -> None:
        self.bus.publish(event)
        self.bus.drain()


def submit(n: int, side: str, qty: str, limit: str | None = None) -> SubmitOrder:
    return SubmitOrder(id=f"bs-{n}", ts_event=T0, client="alice", venue="binance", symbol="BTCUSDT", side=side,
                       qty=D(qty), order_type="limit" if limit else "market",
                       limit_price=D(limit) if limit else None, target_id=f"t{n}")


def filled(order: SubmitOrder) -> OrderFilled:
    return OrderFilled(id=f"binance-{order.id}", ts_event=T0, client_order_id=order.id, client="alice",
                       venue="binance", symbol="BTCUSDT", side=order.side, qty=order.qty, price=D(40000), fee=D(0))


def test_an_order_within_the_caps_goes_to_the_exchange() -> None:
    venue = Venue()
    order = submit(1, "buy", "0.02")  # 800 at 40,000
    venue.log(order)
    assert venue.effects == [PlaceOrder(order)] and venue.published == []


def test_an_order_above_the_notional_cap_is_refused_naming_the_cap_whatever_risk_said() -> None:
    venue = Venue()
    venue.log(submit(2, "buy", "0.01", limit="120000"))  # 1,200 at its limit
    venue.log(submit(3, "sell", "0.03"))  # 1,200 at the newest price
    assert venue.effects == []
    assert [r.client_order_id for r in venue.published] == ["bs-2", "bs-3"]
    assert all("CAPPED LIVE" in r.reason and "max_order_notional 1000" in r.reason for r in venue.published)


def test_the_position_cap_counts_fills_and_working_orders_and_lets_a_reduction_through() -> None:
    venue = Venue()
    first = submit(4, "buy", "0.015")
    venue.log(first)
    venue.log(filled(first))
    working = submit(5, "buy", "0.004")
    venue.log(working)  # 0.019 if it fills: within 0.02
    venue.log(submit(6, "buy", "0.002"))  # 0.021 with the working one: above
    [refused] = venue.published
    assert refused.client_order_id == "bs-6" and "max_position 0.02" in refused.reason
    reduce = submit(7, "sell", "0.01")
    venue.log(reduce)
    assert venue.effects == [PlaceOrder(first), PlaceOrder(working), PlaceOrder(reduce)]


def test_a_market_order_with_no_price_known_is_refused() -> None:
    venue = Venue(price=None)
    venue.log(submit(8, "buy", "0.001"))
    [refused] = venue.published
    assert venue.effects == [] and "no price known for binance.BTCUSDT" in refused.reason


def test_a_capped_mode_must_name_its_caps() -> None:
    with pytest.raises(ConfigError, match="live.capped = true needs live.max_position"):
        parse('mode = "live"\n[live]\ncapped = true\nmax_order_notional = "1000"\n')
    with pytest.raises(ConfigError, match="live.max_order_notional must be > 0"):
        parse('mode = "live"\n[live]\ncapped = true\nmax_order_notional = "-1"\nmax_position = "1"\n')


def test_status_shows_the_capped_live_banner() -> None:
    actor = ExecutionActor(SimClock(T0), InProcessBus(), capped().execution_config())
    banner = actor.status()["capped_live"]
    assert banner.startswith("CAPPED LIVE") and "1000" in banner and "0.02" in banner
    status = {"trading_enabled": False, "prices": [], "risk": None, "portfolio": None, "execution": actor.status()}
    assert control.render(status).splitlines()[0] == banner
    assert control.render_line(status).startswith("CAPPED LIVE | trading OFF")
    uncapped = ExecutionActor(SimClock(T0), InProcessBus(), Config().execution_config())
    assert uncapped.status()["capped_live"] is None
