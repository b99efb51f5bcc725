"""Properties of the shadow venue for arbitrary orders and bars (both fill models) or trades and
quotes (the book model; GTD orders too): an order
never fills for more than its quantity, a resting limit order (book model) only at its limit for
what traded or was shown at or through it, a reduce-only order never adds to the position, a
post-only order never takes, and the two legs of an OCO pair never both fill."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from decimal import Decimal as D
from types import SimpleNamespace

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from bosun.model.positions import signed
from proto.events import Bar, OrderFilled, Quote, SubmitOrder, Trade
from services.execution.config import VenueConfig
from services.execution.venues.shadow import ShadowVenue, _first_at_or_after

T0, MIN = 1_727_740_800_000_000_000, 60_000_000_000

prices = st.integers(90, 110).map(D)
bars = st.lists(st.tuples(prices, st.integers(0, 6), st.integers(0, 6), st.integers(1, 40)), min_size=1, max_size=12)
orders = st.lists(st.tuples(
    st.integers(0, 11),  # decided at the close of this bar
    st.sampled_from(["buy", "sell"]),
    st.integers(1, 30).map(lambda n: D(n) / 10),  # qty
    st.one_of(st.none(), prices),  # limit
    st.sampled_from(["GTC", "IOC", "FOK"]),
    st.booleans(),  # post_only
    st.booleans(),  # reduce_only
    st.sampled_from([None, "stop_limit", "take_profit_limit", "trailing_stop_market"]),  # instead of market/limit
), max_size=10)


def build(i: int, spec: tuple) -> Bar:
    base, up, down, volume = spec
    ts_open = T0 + i * MIN
    return Bar(id=f"b{i}", ts_event=ts_open + MIN, venue="binance", symbol="BTCUSDT", interval="1m", ts_open=ts_open,
               open=base, high=base + up, low=base - down, close=base, volume=D(volume))


def submit_bracket(venue: ShadowVenue, placed: dict[str, SubmitOrder], ts: int, stop: int, take: int) -> list:
    """A long, then its stop and take-profit as one OCO pair."""
    long = SubmitOrder(id="long", ts_event=ts, client="a", venue="binance", symbol="BTCUSDT", side="buy", qty=D(1),
                       order_type="market", target_id="tb")
    legs = [msgspec.structs.replace(long, id=leg, side="sell", qty=D(0), order_type=kind, stop_price=D(level),
                                    close_position=True, oco="pair", reason=reason)
            for leg, kind, level, reason in (("sl", "stop_market", stop, "stop_loss"),
                                             ("tp", "take_profit_market", take, "take_profit"))]
    events: list = []
    for o in (long, *legs):
        placed[o.id] = o
        events += venue.submit(o)
    return events


def check(placed: dict[str, SubmitOrder], events: list, venue: ShadowVenue,
          each: Callable[[SubmitOrder, OrderFilled, D], None] | None = None) -> None:
    """The properties every run keeps; `each` checks more of every fill (with its order's total so far)."""
    fills = [e for e in events if isinstance(e, OrderFilled)]
    filled: dict[str, D] = {}
    position = D(0)
    for f in fills:
        o = placed[f.client_order_id]
        filled[o.id] = filled.get(o.id, D(0)) + f.qty
        after = position + signed(f.side, f.qty)
        if o.reduce_only:
            assert abs(after) <= abs(position) and (after == 0 or (after > 0) == (position > 0)), (o, position, f)
        if o.post_only:
            assert f.liquidity == "maker", (o, f)
        if each is not None:
            each(o, f, filled[o.id])
        position = after
    for coid, qty in filled.items():
        assert placed[coid].close_position or qty <= placed[coid].qty, (coid, qty)
    done = {e.client_order_id for e in events if type(e).__name__ in ("OrderCanceled", "OrderRejected")}
    for coid in set(placed) - done - set(venue.working_orders()):  # nothing left half done in anyone's book
        assert placed[coid].close_position or filled.get(coid) == placed[coid].qty, (coid, filled.get(coid))
    assert not ("sl" in filled and "tp" in filled), "both legs of an OCO pair filled"


@settings(max_examples=150, deadline=None)
@given(bars, orders, st.sampled_from(["simple", "book"]), st.booleans())
def test_fills_respect_quantity_reduce_only_post_only_and_oco(bar_specs, order_specs, model, bracket) -> None:
    venue = ShadowVenue("binance", {"a": VenueConfig(fill_model=model, bar_volume_share=D("0.05"), step_size=D("0.001"),
                                                    slippage_bps=D(0))})
    placed: dict[str, SubmitOrder] = {}
    by_bar: dict[int, list[SubmitOrder]] = {}
    for n, (at, side, qty, limit, tif, post_only, reduce_only, kind) in enumerate(order_specs):
        o = SubmitOrder(id=f"o{n}", ts_event=T0 + (at + 1) * MIN, client="a", venue="binance", symbol="BTCUSDT",
                        side=side, qty=qty, order_type="limit" if limit is not None else "market", limit_price=limit,
                        target_id=f"t{n}", time_in_force=tif, post_only=post_only, reduce_only=reduce_only)
        if kind is not None:  # a stop / take-profit at the drawn price, its limit 1 away; a 2% trail
            level = limit if limit is not None else D(100)
            o = msgspec.structs.replace(o, order_type=kind, stop_price=level, trailing_bps=D(200), post_only=False,
                                        limit_price=level + (1 if side == "buy" else -1))
        by_bar.setdefault(at, []).append(o)
    events = []
    for i, spec in enumerate(bar_specs):
        events += venue.on_bar(build(i, spec))
        if bracket and i == 0:
            events += submit_bracket(venue, placed, T0 + MIN, 95, 105)
        for o in by_bar.get(i, ()):
            placed[o.id] = o
            events += venue.submit(o)

    check(placed, events, venue)


# ----------------------------------------------------------------------------- the book model on quotes

quote_ticks = st.tuples(st.just("quote"), st.integers(95, 104), st.integers(1, 3), st.integers(0, 30),
                        st.integers(0, 30))
trade_ticks = st.tuples(st.just("trade"), st.integers(93, 107), st.integers(1, 40), st.sampled_from(["buy", "sell"]),
                        st.just(0))
# Mostly quotes, so that resting orders are often reached by a quote before a trade fills them.
ticks = st.lists(st.one_of(quote_ticks, quote_ticks, quote_ticks, trade_ticks), min_size=1, max_size=30)
tick_orders = st.lists(st.tuples(
    st.integers(0, 29),  # decided at this tick
    st.sampled_from(["buy", "sell"]),
    st.integers(1, 30).map(lambda n: D(n) / 10),
    st.one_of(st.none(), st.integers(-3, 3)),  # limit: this many ticks into the spread from the same-side best
    st.sampled_from(["GTC", "GTC", "IOC", "FOK", "GTD"]),
    st.integers(1, 10),  # GTD: expires this many ticks later
    st.booleans(),  # post_only
    st.sampled_from([False, False, True]),  # reduce_only
), max_size=8)


@settings(max_examples=150, deadline=None)
@given(ticks, tick_orders, st.booleans())
def test_on_quotes_and_trades_fills_respect_quantity_volume_reduce_only_post_only_and_oco(tick_specs, order_specs,
                                                                                           bracket) -> None:
    venue = ShadowVenue("binance", {"a": VenueConfig(fill_model="book", step_size=D("0.001"), slippage_bps=D(0))})
    ms = 1_000_000
    stream: list = [Quote(id="q-1", ts_event=T0, venue="binance", symbol="BTCUSDT", bid=D(99), bid_qty=D(1), ask=D(100),
                          ask_qty=D(1))]
    for i, (kind, price, a, b, c) in enumerate(tick_specs):
        ts = T0 + (i + 1) * ms
        if kind == "quote":  # bid `price`, ask `price + a`, sizes in tenths
            stream.append(Quote(id=f"q{i}", ts_event=ts, venue="binance", symbol="BTCUSDT", bid=D(price),
                                bid_qty=D(b) / 10, ask=D(price + a), ask_qty=D(c) / 10))
        else:
            stream.append(Trade(id=f"t{i}", ts_event=ts, venue="binance", symbol="BTCUSDT", price=D(price),
                                qty=D(a) / 10, aggressor=b))
    placed: dict[str, SubmitOrder] = {}
    by_tick: dict[int, list[SubmitOrder]] = {}
    for n, (at, side, qty, offset, tif, ttl, post_only, reduce_only) in enumerate(order_specs):
        at %= len(tick_specs)  # among the ticks there are
        ts = T0 + (at + 1) * ms
        book = next(md for md in reversed(stream[:at + 2]) if type(md) is Quote)
        limit = None if offset is None else book.bid + offset if side == "buy" else book.ask - offset
        o = SubmitOrder(id=f"o{n}", ts_event=ts, client="a", venue="binance", symbol="BTCUSDT", side=side, qty=qty,
                        order_type="limit" if limit is not None else "market", limit_price=limit, target_id=f"t{n}",
                        time_in_force=tif, expire_ns=ts + ttl * ms if tif == "GTD" else None,
                        post_only=post_only and limit is not None, reduce_only=reduce_only)
        by_tick.setdefault(at + 1, []).append(o)
    events: list = []
    for i, md in enumerate(stream):
        events += venue.on_quote(md) if type(md) is Quote else venue.on_market(md)
        if bracket and i == 0:
            events += submit_bracket(venue, placed, T0, 97, 103)
        for o in by_tick.get(i, ()):
            placed[o.id] = o
            events += venue.submit(o)

    rested: dict[str, D] = {}  # what each order filled resting (maker): its taking on arrival is bounded apart

    def reached(o: SubmitOrder, md: Quote | Trade) -> D:
        """What `md` offers a resting limit: a trade's size at or through it, the size a quote shows at
        an opposite best that reaches it (an ask at or under a buy limit)."""
        buy = o.side == "buy"
        if type(md) is Trade:
            return md.qty if (md.price <= o.limit_price if buy else md.price >= o.limit_price) else D(0)
        if buy:
            return md.ask_qty if md.ask <= o.limit_price else D(0)
        return md.bid_qty if md.bid >= o.limit_price else D(0)

    def within_volume(o: SubmitOrder, f: OrderFilled, filled: D) -> None:
        if o.time_in_force == "GTD":
            assert f.ts_event < o.expire_ns, (o, f)
        if f.liquidity == "maker" and o.order_type == "limit":  # a resting order: what traded or showed at/through it
            rested[o.id] = rested.get(o.id, D(0)) + f.qty
            assert f.price == o.limit_price, (o, f)
            assert f.qty <= sum(reached(o, md) for md in stream if md.ts_event == f.ts_event), (o, f)
            offered = sum(reached(o, md) for md in stream if o.ts_event < md.ts_event <= f.ts_event)
            assert rested[o.id] <= offered, (o, f, offered)
        elif f.liquidity == "taker" and o.order_type == "limit":  # took on arrival: never past its limit
            assert f.price >= o.limit_price if o.side == "sell" else f.price <= o.limit_price, (o, f)

    check(placed, events, venue, within_volume)


@given(st.lists(st.integers(0, 20), max_size=40), st.integers(-1, 22))
def test_the_first_kept_event_ending_at_or_after_a_time_is_found_as_walking_back_finds_it(ends, ts) -> None:
    """The newest events are looked at first and older ones by bisection: the same index as
    walking back from the newest one by one (kept events are in ts_event order)."""
    recent = deque(SimpleNamespace(ts_event=t) for t in sorted(ends))
    walked = len(recent)
    while walked and recent[walked - 1].ts_event >= ts:
        walked -= 1
    assert _first_at_or_after(recent, ts) == walked
