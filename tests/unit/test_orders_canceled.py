"""OrdersCanceled, a venue's one answer to a CancelAllOrders: every reader of the order log applies
it exactly as it applies one OrderCanceled per id it names, and the shadow venue bounds it."""

from __future__ import annotations

from decimal import Decimal as D

from hypothesis import given
from hypothesis import strategies as st

from bosun.runtime.clock import SimClock
from bosun.runtime.inproc import InProcessBus
from proto import codec
from proto.events import (MAX_CANCELED_IDS, CancelAllOrders, CancelOrder, Event, OrderAccepted, OrderCanceled,
                          OrdersCanceled, SubmitOrder)
from services.execution.orders import OrderBook
from services.execution.venues.live import CancelVenueOrder, LiveAdapter
from services.execution.venues.shadow import ShadowVenue
from services.risk.orders import OpenOrders
from tests.unit.test_capped_live import capped
from tests.unit.test_execution_actor import config
from tests.unit.test_shadow_venue import T0, bar, venue


def submit(n: int, order_type: str = "limit", side: str | None = None) -> SubmitOrder:
    return SubmitOrder(id=f"bs-{n}", ts_event=T0 + n, client="alice", venue="binance", symbol="BTCUSDT",
                       side=side or ("buy" if n % 2 else "sell"), qty=D("0.5"), order_type=order_type,
                       limit_price=D(90) if order_type == "limit" else None, target_id=f"t{n}")


def accepted(order: SubmitOrder) -> OrderAccepted:
    return OrderAccepted(id=order.id, ts_event=order.ts_event, client_order_id=order.id,
                         venue_order_id=f"shadow-{order.id}", client="alice", venue="binance", symbol="BTCUSDT")


def singles(coids: list[str]) -> list[Event]:
    return [OrderCanceled(id=coid, ts_event=T0, client_order_id=coid, client="alice", venue="binance",
                          symbol="BTCUSDT", reason="kill_switch") for coid in coids]


def batch(coids: list[str]) -> list[Event]:
    return [OrdersCanceled(id="ks.canceled.1", ts_event=T0, client_order_ids=tuple(coids), client="alice",
                           venue="binance", symbol="BTCUSDT", reason="kill_switch")] if coids else []


# Open orders (market ones too: the book keeps them apart), then the ids canceled: some of them,
# maybe one never seen, maybe one twice.
cases = st.integers(1, 12).flatmap(lambda n: st.tuples(
    st.lists(st.sampled_from(["limit", "market"]), min_size=n, max_size=n),
    st.lists(st.integers(0, n), max_size=n + 2)))


def log_and_ids(types: list[str], picked: list[int]) -> tuple[list[SubmitOrder], list[str]]:
    orders = [submit(n, t) for n, t in enumerate(types)]
    return orders, [f"bs-{n}" for n in picked]  # bs-<len(types)>: an order never seen


@given(cases)
def test_the_books_apply_the_batch_as_the_singles(case: tuple[list[str], list[int]]) -> None:
    orders, coids = log_and_ids(*case)
    books, risks = [], []
    for answers in (singles(coids), batch(coids)):
        book, risk = OrderBook(), OpenOrders()
        for event in [*orders, *answers]:
            book.apply(event)
        for order in orders:
            risk.on_submit_order(order)
        for answer in answers:
            if isinstance(answer, OrdersCanceled):
                risk.on_orders_canceled(answer)
            else:
                risk.on_order_canceled(answer)
        key = ("alice", "binance", "BTCUSDT")
        books.append((list(book.open), book.working(key), book.committed(key),
                      [o.order.id for o in book.open_orders(key)]))
        risks.append((dict(risk._left), +risk.by_client))
    assert books[0] == books[1] and risks[0] == risks[1]
    assert not set(coids) & set(books[1][0])  # nothing canceled is open


@given(cases)
def test_the_shadow_venue_replays_the_batch_as_the_singles(case: tuple[list[str], list[int]]) -> None:
    orders, coids = log_and_ids(*case)
    working = []
    for answers in (singles(coids), batch(coids)):
        v = venue()
        for order in orders:
            v.replay(order)
            v.replay(accepted(order))
        for answer in answers:
            v.replay(answer)
        working.append(v.working_orders())
    assert working[0] == working[1] and not set(coids) & set(working[1])


@given(cases)
def test_the_live_adapter_takes_the_batch_as_the_singles(case: tuple[list[str], list[int]]) -> None:
    """Capped, it keeps a book; a cancel in the log the batch answered is not carried out again on start."""
    orders, coids = log_and_ids(*case)
    outcomes = []
    for answers in (singles(coids), batch(coids)):
        for cfg in (capped(), config(kind="live")):
            bus, effects = InProcessBus(), []
            bus.on_effect(effects.append)
            adapter = LiveAdapter(SimClock(T0), bus, cfg.execution_config())
            cancels = [CancelOrder(id=f"{o.id}.cancel", ts_event=T0, client_order_id=o.id, client="alice",
                                   venue="binance", symbol="BTCUSDT", reason="kill_switch") for o in orders]
            for event in [*orders, *map(accepted, orders), *cancels, *answers]:
                adapter.on_order_log(event)
            bus.attach(adapter)  # started: what the log left unanswered is carried out
            book = list(adapter._book.open) if adapter._book is not None else None
            outcomes.append((book, sorted(e.cancel.id for e in effects if isinstance(e, CancelVenueOrder))))
    assert outcomes[:2] == outcomes[2:]
    assert all(f"{coid}.cancel" not in carried for _, carried in outcomes for coid in coids)


def test_the_shadow_venue_answers_a_cancel_all_in_events_of_at_most_the_bound() -> None:
    v: ShadowVenue = venue()
    v.on_bar(bar(0, "99", "101", "98", "100"))
    n = 2 * MAX_CANCELED_IDS + 1
    for i in range(n):
        v.submit(submit(i, side="buy"))  # limit buys at 90, the market at 100: all rest
    kill = CancelAllOrders(id="alice.binance.BTCUSDT.kill_switch.1", ts_event=T0 + n, client="alice",
                           venue="binance", symbol="BTCUSDT", reason="kill_switch")
    out = v.cancel_all(kill)
    assert [type(e) for e in out] == [OrdersCanceled] * 3
    assert [len(e.client_order_ids) for e in out] == [MAX_CANCELED_IDS, MAX_CANCELED_IDS, 1]
    assert [e.id for e in out] == [f"{kill.id}.canceled.{k}" for k in (1, 2, 3)]  # deterministic: dedup on replay
    assert [c for e in out for c in e.client_order_ids] == [f"bs-{i}" for i in range(n)]
    assert v.working_orders() == [] and v.cancel_all(kill) == []
    assert all(codec.decode_any(codec.encode(e)) == e for e in out)  # each within what decoding allows
