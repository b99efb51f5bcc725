"""Property-based, through risk AND execution (with its last-line guard) and the shadow venue on
one in-process bus: for arbitrary sequences of targets (NaN, infinities and absurd sizes
included), bars, the kill switch, clients' own switches and scope states, every target gets one
verdict, no position ever exceeds its cap, no order takes its client's gross (working orders
included) past its cap at the prices of that moment, no order adds exposure while its scope is
REDUCING or HALTED (or the kill switch is off), and no client's targets place orders faster
than its rate caps."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bosun.apps.config import ClientConfig, Config
from bosun.model.exposure import reduces
from bosun.model.positions import signed
from bosun.runtime.clock import SimClock
from bosun.runtime.inproc import InProcessBus
from proto.events import Bar, PriceSnapshot, RiskLimitBreached, SubmitOrder, TargetApproved, TargetPosition
from services.execution.actor import ExecutionActor
from services.execution.config import VenueConfig
from services.execution.venues.shadow_adapter import ShadowAdapter
from services.risk.actor import RiskActor
from services.risk.config import LimitsConfig
from tests.unit.test_risk_actor import CONFIG, S, T0

D = Decimal
MIN = 60 * S
CLIENTS = ("a", "b")
MARKETS = ("BTCUSDT", "ETHUSDT")
CAPS = dict(max_position=D(2), max_position_notional=D(50000), max_gross_notional=D(80000),
            max_total_gross_notional=D(120000), max_orders_per_s=3, max_orders_per_min=10, max_price_age_s=None,
            max_order_notional=D(60000), price_band_pct=D(20))
STATES = (b"active", b"reducing", b"halted", b"nonsense")

sizes = st.decimals(min_value=-3, max_value=3, places=2)
qty = st.one_of(sizes, sizes, sizes, sizes,
                st.sampled_from([D("NaN"), D("Infinity"), D("-Infinity"), D("-0"), D("1e30"), D("-1e16")]))
price = st.decimals(min_value=5000, max_value=60000, places=2)
step = st.one_of(
    st.tuples(st.just("target"), st.sampled_from(CLIENTS + ("nobody",)), st.sampled_from(MARKETS), qty,
              st.booleans()),
    st.tuples(st.just("target"), st.sampled_from(CLIENTS), st.sampled_from(MARKETS), qty, st.just(True)),
    st.tuples(st.just("bar"), st.sampled_from(MARKETS), price),
    st.tuples(st.just("wait"), st.sampled_from([S // 10, S // 3, S, 20 * S])),
    st.tuples(st.just("switch"), st.sampled_from((None,) + CLIENTS), st.booleans()),
    st.tuples(st.just("state"), st.sampled_from(["global", "client.a", "client.b", "market.a.binance.BTCUSDT",
                                                 "market.b.binance.ETHUSDT"]), st.sampled_from(STATES)),
)


class Model:
    """What the test set in KV control, to know which orders may add exposure."""

    def __init__(self) -> None:
        self.enabled = True
        self.switch: dict[str, bool] = {}
        self.state: dict[str, bytes] = {}

    def adds_allowed(self, client: str, symbol: str) -> bool:
        scopes = ("global", f"client.{client}", f"market.{client}.binance.{symbol}")
        return (self.enabled and self.switch.get(client, True)
                and all(self.state.get(s, b"active") == b"active" for s in scopes))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(step, min_size=30, max_size=90))
# Two markets' targets before either fills: the second counts the first's orders (found by the
# gross check below; risk used to count filled positions only).
@example(steps=[("target", "a", "BTCUSDT", D("1.6"), True), ("target", "a", "ETHUSDT", D("1.6"), True)])
def test_no_order_breaks_a_cap_or_adds_exposure_in_a_restricted_scope(steps: list[tuple]) -> None:
    limits = LimitsConfig(**CAPS)
    config = Config(clients=[ClientConfig(id=c, strategies=["sma"], risk=limits,
                                          venues={"binance": VenueConfig(step_size=D("0.001"))}) for c in CLIENTS],
                    strategies=CONFIG.strategies)
    clock, bus = SimClock(T0), InProcessBus()
    risk = RiskActor(clock, bus, config.risk_config())
    execution = ExecutionActor(clock, bus, config.execution_config(guarded=True))
    venue = ShadowAdapter(clock, bus, config.execution_config())
    for actor in (risk, execution, venue):
        bus.attach(actor)
    model = Model()
    bus.set_trading_enabled(True)
    marks = {m: D(30000) for m in MARKETS}
    for m in MARKETS:
        bus.publish(PriceSnapshot(id=f"p0{m}", ts_event=T0, venue="binance", symbol=m, price=marks[m]))
    bus.drain()

    placed: dict[str, list[tuple[int, str]]] = defaultdict(list)  # client -> (time, target) of its orders' targets
    verdicts: dict[str, int] = defaultdict(int)  # target id -> approvals and rejections (a clamp comes with one)
    problems: list[str] = []

    def watch(_subject: str, message: object) -> None:
        if isinstance(message, TargetApproved):
            verdicts[message.id] += 1
        elif (isinstance(message, RiskLimitBreached) and message.action == "rejected"
              and not message.limit.startswith("guard.")):  # the guard's is execution's alarm, not a verdict
            verdicts[message.target_id] += 1
        if type(message) is not SubmitOrder or message.close_position:
            return
        key = (message.client, message.venue, message.symbol)
        others = sum((o.signed_remaining for coid, o in execution.book.open.items()
                      if coid != message.id and o.order.order_type == "market"
                      and (o.order.client, o.order.venue, o.order.symbol) == key), D(0))
        committed = execution.book.position(key) + others
        after = committed + signed(message.side, message.qty)
        if not reduces(after, committed) and not model.adds_allowed(message.client, message.symbol):
            problems.append(f"{message.id} adds {committed} -> {after} in a restricted scope")
        if not reduces(after, committed):  # the client's markets, each with its orders still working
            gross = abs(after) * marks[message.symbol] + sum(
                (abs(execution.book.position((message.client, "binance", m)) + sum(
                    (o.signed_remaining for o in execution.book.open.values() if o.order.order_type == "market"
                     and (o.order.client, o.order.symbol) == (message.client, m)), D(0))) * marks[m]
                 for m in MARKETS if m != message.symbol), D(0))
            if gross > CAPS["max_gross_notional"]:
                problems.append(f"{message.id} takes {message.client}'s gross to {gross}, past the cap")
        if abs(after) > CAPS["max_position"]:
            problems.append(f"{message.id} takes {key} to {after}, past the cap")
        times = placed[message.client]
        if not times or times[-1][1] != message.target_id:
            times.append((clock.now_ns(), message.target_id))

    bus.tap(watch)
    for n, (kind, *args) in enumerate(steps):
        if kind == "bar":
            market, p = args
            clock.advance_to(clock.now_ns() + MIN)
            now = clock.now_ns()
            bus.publish(Bar(id=f"b{n}", ts_event=now, venue="binance", symbol=market, interval="1m",
                            ts_open=now - MIN, open=marks[market], high=max(p, marks[market]),
                            low=min(p, marks[market]), close=p, volume=D(1000)))
            marks[market] = p
            bus.publish(PriceSnapshot(id=f"p{n}", ts_event=now, venue="binance", symbol=market, price=p))
        elif kind == "wait":
            clock.advance_to(clock.now_ns() + args[0])
        elif kind == "switch":
            client, on = args
            if client is None:
                model.enabled = on
                bus.set_trading_enabled(on)
            else:
                model.switch[client] = on
                bus.put_control(f"trading_enabled.{client}", b"true" if on else b"false")
        elif kind == "state":
            scope, value = args
            model.state[scope] = value
            bus.put_control(f"state.{scope}", value)
        else:
            client, market, q, at_mark = args
            t = TargetPosition(id=f"t{n}", ts_event=clock.now_ns(), client=client, venue="binance", symbol=market,
                               qty=q, strategy="sma", price=marks[market] if at_mark else marks[market] * D("1.3"))
            bus.publish(t)
            bus.drain()
            assert verdicts[t.id] == 1, f"target {t.id} got {verdicts[t.id]} verdicts"
        bus.drain()
        assert not problems, problems
    for key, position in execution.book.positions.by_key.items():
        assert abs(position) <= CAPS["max_position"], (key, position)
    for client, times in placed.items():
        for i, (t, _) in enumerate(times):
            assert sum(1 for u, _ in times[i:] if u < t + S) <= CAPS["max_orders_per_s"]
            assert sum(1 for u, _ in times[i:] if u < t + 60 * S) <= CAPS["max_orders_per_min"]
