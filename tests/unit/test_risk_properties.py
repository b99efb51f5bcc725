"""Property-based: for arbitrary sequences of targets (any quantity, NaN and infinities included),
prices, fills toward the approved targets and clock steps, through RiskActor on the in-process bus,
every target gets one verdict, and every approval that adds exposure keeps the client within its
position, position notional, gross and total gross caps at the prices of that moment; the
approvals of a client never exceed its rate caps in any rolling window, reductions included."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bosun.apps.config import ClientConfig, Config
from bosun.model.exposure import reduces
from bosun.model.positions import signed
from bosun.runtime.clock import SimClock
from bosun.runtime.inproc import InProcessBus
from proto.events import Event, OrderFilled, PriceSnapshot, RiskLimitBreached, TargetApproved, TargetPosition
from services.risk.actor import RiskActor
from services.risk.config import LimitsConfig
from tests.unit.test_risk_actor import CONFIG, S, T0

D = Decimal
CLIENTS = ("a", "b")
MARKETS = ("BTCUSDT", "ETHUSDT")
CAPS = dict(max_position=D(2), max_position_notional=D(50000), max_gross_notional=D(80000),
            max_total_gross_notional=D(120000), max_orders_per_s=3, max_orders_per_min=10, max_price_age_s=None)

sizes = st.decimals(min_value=-3, max_value=3, places=2)
qty = st.one_of(sizes, sizes, sizes, sizes,  # mostly sane, sometimes not a number a wire event may carry
                st.sampled_from([D("NaN"), D("Infinity"), D("-Infinity"), D("-0"), D("1e30"), D("-1e16")]))
price = st.decimals(min_value=5000, max_value=60000, places=2)
target = st.tuples(st.just("target"), st.sampled_from(CLIENTS), st.sampled_from(MARKETS), qty, price)
step = st.one_of(
    target, target, target,
    st.tuples(st.just("price"), st.sampled_from(MARKETS), price),
    st.tuples(st.just("fill"), st.sampled_from(CLIENTS), st.sampled_from(MARKETS),
              st.sampled_from([D("0.25"), D("0.5"), D(1)])),  # this share of the way to the approved target
    st.tuples(st.just("wait"), st.sampled_from([S // 10, S // 3, S, 20 * S])),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(step, min_size=40, max_size=100), clamp=st.booleans())
def test_no_approval_breaks_a_cap(steps: list[tuple], clamp: bool) -> None:
    limits = LimitsConfig(**CAPS, on_breach="clamp" if clamp else "reject")
    config = Config(clients=[ClientConfig(id=c, strategies=["sma"], risk=limits) for c in CLIENTS],
                    strategies=CONFIG.strategies)
    clock, bus = SimClock(T0), InProcessBus()
    risk = bus.attach(RiskActor(clock, bus, config.risk_config()))
    out: list[Event] = []
    bus.tap(lambda _, m: isinstance(m, (TargetApproved, RiskLimitBreached)) and out.append(m))
    bus.set_trading_enabled(True)
    bus.drain()

    positions: dict[tuple[str, str], Decimal] = defaultdict(D)
    approved: dict[tuple[str, str], Decimal] = {}
    marks: dict[str, Decimal] = {}  # the newest price, else the last fill's: what risk values positions at
    approvals: dict[str, list[int]] = defaultdict(list)
    for n, (kind, *args) in enumerate(steps):
        if kind == "price":
            market, p = args
            marks[market] = p
            bus.publish(PriceSnapshot(id=f"p{n}", ts_event=clock.now_ns(), venue="binance", symbol=market, price=p))
        elif kind == "wait":
            clock.advance_to(clock.now_ns() + args[0])
        elif kind == "fill":
            client, market, share = args
            gap = approved.get((client, market), D(0)) - positions[(client, market)]
            size = abs(gap * share).quantize(D("0.001"))
            if size:
                side = "buy" if gap > 0 else "sell"
                fill_price = marks.setdefault(market, D(1000))
                bus.publish(OrderFilled(id=f"f{n}", ts_event=clock.now_ns(), client_order_id=f"o{n}", client=client,
                                        venue="binance", symbol=market, side=side, qty=size, price=fill_price,
                                        fee=D(0)))
                positions[(client, market)] += signed(side, size)
        else:
            client, market, q, p = args
            t = TargetPosition(id=f"t{n}", ts_event=clock.now_ns(), client=client, venue="binance", symbol=market,
                               qty=q, strategy="sma", price=p)
            out.clear()
            bus.publish(t)
            bus.drain()
            verdicts = [v for v in out if isinstance(v, TargetApproved) or v.action == "rejected"]
            assert len(verdicts) == 1 and all(v.target_id == t.id for v in out if isinstance(v, RiskLimitBreached))
            (verdict,) = verdicts
            if isinstance(verdict, RiskLimitBreached):
                continue
            assert not [v for v in out if isinstance(v, RiskLimitBreached)] or clamp  # clamps only when asked
            a = verdict.target.qty
            approved[(client, market)] = a
            approvals[client].append(clock.now_ns())
            held = positions[(client, market)]
            if reduces(a, held):
                continue
            value = marks.get(market, p)
            assert abs(a) <= CAPS["max_position"] and abs(a) * value <= CAPS["max_position_notional"]

            def gross(who: str | None) -> Decimal:
                return sum((abs(q) * marks[m] for (c, m), q in positions.items()
                            if q and (c, m) != (client, market) and who in (None, c)), D(0)) + abs(a) * value

            assert gross(client) <= CAPS["max_gross_notional"]
            assert gross(None) <= CAPS["max_total_gross_notional"]
        bus.drain()
    for times in approvals.values():
        for i, t in enumerate(times):
            assert sum(1 for u in times[i:] if u < t + S) <= CAPS["max_orders_per_s"]
            assert sum(1 for u in times[i:] if u < t + 60 * S) <= CAPS["max_orders_per_min"]
    assert risk.status()["approved"] == sum(map(len, approvals.values()))
