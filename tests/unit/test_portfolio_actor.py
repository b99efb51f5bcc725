"""The portfolio actor on the in-process bus."""

from __future__ import annotations

from decimal import Decimal as D

import msgspec
import pytest

from bosun.runtime.clock import SimClock
from bosun.apps.config import ClientConfig, Config
from bosun.runtime.inproc import InProcessBus
from proto.events import OrderFilled, PositionChanged, PriceSnapshot
from services.portfolio.actor import PortfolioActor, StoreFill
from services.portfolio.positions import Position

CONFIG = Config(clients=[ClientConfig(id="alice", capital=D(1000)), ClientConfig(id="bob", capital=D(500))],
                strategies=[])
KEY = ("alice", "binance", "BTCUSDT")


def fill(n: int, side: str, qty: str, price: str, fee: str = "0", *, client: str = "alice",
         symbol: str = "BTCUSDT", reason: str = "signal") -> OrderFilled:
    return OrderFilled(id=f"fill-{n}", ts_event=n * 1_000, client_order_id=f"order-{n}", client=client,
                       venue="binance", symbol=symbol, side=side, qty=D(qty), price=D(price), fee=D(fee),
                       reason=reason)


def snapshot(price: str, symbol: str = "BTCUSDT", ts: int = 0) -> PriceSnapshot:
    return PriceSnapshot(id=f"snap-{price}", ts_event=ts, venue="binance", symbol=symbol, price=D(price))


class Harness:
    def __init__(self, **kwargs) -> None:
        self.bus = InProcessBus()
        self.changes: list[PositionChanged] = []
        self.stored: list[StoreFill] = []
        self.bus.subscribe("position.changed.>", self.changes.append)
        self.bus.on_effect(self.stored.append)  # type: ignore[arg-type]
        self.actor = self.bus.attach(PortfolioActor(SimClock(), self.bus, CONFIG.portfolio_config(), **kwargs))

    def send(self, *messages) -> list[PositionChanged]:
        before = len(self.changes)
        for message in messages:
            self.bus.publish(message)
        self.bus.drain()
        return self.changes[before:]


def test_each_new_fill_publishes_its_position():
    h = Harness()
    f1, f2 = fill(1, "buy", "2", "100", "0.2"), fill(2, "sell", "1", "110", "0.11")
    [c1] = h.send(f1)
    assert c1 == PositionChanged(id="fill-1", ts_event=1_000, client="alice", venue="binance", symbol="BTCUSDT",
                                 qty=D(2), avg_price=D(100), realized_pnl=D("-0.2"), unrealized_pnl=D(0),
                                 fees=D("0.2"), fill_id="fill-1")
    [c2] = h.send(f2)
    assert (c2.qty, c2.avg_price, c2.fees) == (D(1), D(100), D("0.31"))
    assert c2.realized_pnl == D("9.69")  # (110 - 100) * 1 - 0.31: net of fees
    assert c2.unrealized_pnl == D(10)  # no mark yet: valued at the fill price, (110 - 100) * 1


def test_unrealized_pnl_uses_the_newest_mark():
    h = Harness()
    h.send(snapshot("90"))
    [change] = h.send(fill(1, "buy", "2", "100"))
    assert change.unrealized_pnl == D(-20)  # (90 - 100) * 2
    h.send(snapshot("130"))
    assert h.actor.unrealized(KEY) == D(60)


def test_an_older_snapshot_does_not_overwrite_a_newer_mark():
    h = Harness()
    h.send(fill(1, "buy", "2", "100"), snapshot("120", ts=2_000), snapshot("90", ts=1_000))
    assert h.actor.unrealized(KEY) == D(40)  # (120 - 100) x 2: the late, older 90 is ignored
    h.send(snapshot("130", ts=2_000))  # the same time replaces (a corrected price)
    assert h.actor.unrealized(KEY) == D(60) and h.actor.equity("alice") == D(1060)


def test_replayed_fill_changes_nothing_and_publishes_nothing():
    h = Harness()
    f1 = fill(1, "buy", "1", "100", "0.1")
    h.send(f1, fill(2, "sell", "1", "120", "0.12"))
    before = h.actor.positions()[KEY]
    before = Position(before.qty, before.avg_price, before.realized_pnl, before.fees)
    stored = len(h.stored)
    assert h.send(f1) == []
    assert h.actor.positions()[KEY] == before
    assert len(h.stored) == stored  # nothing to store either
    assert len(h.actor.round_trips()) == 1


def test_positions_are_the_sum_of_the_fills():
    h = Harness()
    fills = [fill(1, "buy", "0.5", "100", "0.05"), fill(2, "buy", "0.25", "104", "0.026"),
             fill(3, "sell", "1", "110", "0.11"), fill(4, "buy", "0.1", "90", "0.009"),
             fill(5, "sell", "2", "10", "0.02", symbol="ETHUSDT"), fill(6, "buy", "3", "20", client="bob")]
    h.send(*fills)
    for key, position in h.actor.positions().items():
        mine = [f for f in fills if (f.client, f.venue, f.symbol) == key]
        assert position.qty == sum(f.qty if f.side == "buy" else -f.qty for f in mine)
        assert position.fees == sum(f.fee for f in mine)
    assert h.actor.positions()[KEY].qty == D("-0.15")
    assert len(h.actor.positions()) == 3


def test_equity_is_capital_plus_realized_minus_fees_plus_unrealized_at_marks():
    h = Harness()
    h.send(fill(1, "buy", "2", "100", "0.2"), fill(2, "sell", "1", "110", "0.11"),
           fill(3, "sell", "1", "10", "0.01", symbol="ETHUSDT"), fill(4, "buy", "1", "1", client="bob"))
    # Marks: BTC at the last fill (110) until a snapshot; ETH at 8 from a snapshot.
    h.send(snapshot("8", "ETHUSDT"))
    assert h.actor.equity("alice") == D("1000") + D(10) - D("0.32") + D(10) + D(2)
    h.send(snapshot("120"))
    assert h.actor.equity("alice") == D("1000") + D(10) - D("0.32") + D(20) + D(2)
    assert h.actor.equity("bob") == D(500) + D(119)  # bought 1 at 1, marked at 120
    with pytest.raises(KeyError, match="carol"):
        h.actor.equity("carol")


def test_round_trips_and_exit_reason_reach_the_accessor():
    h = Harness()
    h.send(fill(1, "buy", "1", "100"), fill(2, "sell", "2", "110", reason="signal"))
    assert [t.side for t in h.actor.round_trips()] == ["long"]
    assert [[t.side for t in e.closed] for e in h.stored] == [[], ["long"]]  # stored with the fill that closed it
    assert [e.position.fill_id for e in h.stored] == [e.fill.id for e in h.stored] == ["fill-1", "fill-2"]
    h.send(fill(3, "buy", "1", "100", reason="stop_loss"))
    assert [(t.side, t.pnl, t.exit_reason) for t in h.actor.round_trips()] == [
        ("long", D(10), "signal"), ("short", D(10), "stop_loss")]


def test_restoring_from_fills_gives_the_same_state_and_treats_them_as_seen():
    fills = [fill(1, "buy", "3", "100", "0.3"), fill(2, "sell", "1", "105", "0.1"),
             fill(3, "sell", "4", "90", "0.4"), fill(4, "buy", "1", "95", "0.1", symbol="ETHUSDT")]
    live = Harness()
    live.send(*fills)
    restored = Harness(fills=fills)
    assert restored.changes == []
    assert restored.actor.positions() == live.actor.positions()
    assert restored.actor.round_trips() == live.actor.round_trips()
    assert restored.actor.equity("alice") == live.actor.equity("alice")
    assert restored.send(*fills) == []


def test_bad_fill_raises_naming_the_field_and_changes_nothing():
    h = Harness()
    h.send(fill(1, "buy", "1", "100"))
    bad = fill(2, "sell", "0", "100")
    with pytest.raises(ValueError, match="qty"):
        h.send(bad)
    assert h.actor.positions()[KEY] == Position(D(1), D(100))
    assert h.actor.round_trips() == []


def test_seen_fill_ids_are_bounded():
    h = Harness(max_seen_fills=2)
    h.send(fill(1, "buy", "1", "100"), fill(2, "buy", "1", "100"), fill(3, "buy", "1", "100"))
    assert h.send(fill(3, "buy", "1", "100")) == []  # recent: still recognised
    # The oldest was forgotten: memory holds 2 ids; the store's ON CONFLICT is the durable guard.
    assert len(h.send(fill(1, "buy", "1", "100"))) == 1


def test_status_is_json_ready():
    h = Harness()
    h.send(fill(1, "buy", "2", "100", "0.2"), snapshot("101"))
    status = msgspec.json.decode(msgspec.json.encode(h.actor.status()))
    [row] = status["positions"]
    assert row == {"client": "alice", "venue": "binance", "symbol": "BTCUSDT", "qty": "2", "avg_price": "100",
                   "realized_pnl": "-0.2", "unrealized_pnl": "2", "fees": "0.2", "mark": "101", "funding": "0",
                   "mark_status": "fresh", "mark_age_s": 0.0}
    assert status["equity"] == {"alice": "1001.8", "bob": "500"}
    [running] = status["open_round_trips"]
    assert (running["side"], running["open_qty"]) == ("long", "2")
    assert status["round_trips_closed"] == 0


def slow_equity(actor: PortfolioActor, client: str, capital: D, marks: dict[str, D]) -> D:
    """The definition, summed term by term: capital + realized pnl - fees + unrealized pnl."""
    equity = capital
    for (c, _venue, symbol), p in actor.positions().items():
        if c == client:
            equity += p.realized_pnl - p.fees + p.unrealized(marks[symbol])
    return equity


def test_equity_kept_up_to_date_by_fills_equals_the_definition_exactly() -> None:
    import random

    rng = random.Random(3)
    h = Harness()
    marks: dict[str, D] = {}
    snapshotted: set[str] = set()
    flat_after_a_fill = 0
    for n in range(1, 400):
        symbol = rng.choice(["BTCUSDT", "ETHUSDT"])
        price = D(rng.randint(9_000, 11_000)) / 100
        if rng.random() < 0.5:  # a fill: opens, adds, reduces, closes or flips
            held = h.actor.positions().get(("alice", "binance", symbol), Position()).qty
            side, qty = rng.choice(["buy", "sell"]), rng.choice([D(1), D(2), D("0.5"), D("0.3")])
            if held and rng.random() < 0.3:  # close it exactly
                side, qty = ("sell" if held > 0 else "buy"), abs(held)
            h.send(fill(n, side, str(qty), str(price), str(qty * price / 1000), symbol=symbol))
            if symbol not in snapshotted:  # no snapshot yet: valued at the last fill price
                marks[symbol] = price
            flat_after_a_fill += h.actor.positions()[("alice", "binance", symbol)].qty == 0
        else:
            h.send(snapshot(str(price), symbol))
            marks[symbol] = price
            snapshotted.add(symbol)
        got, want = h.actor.equity("alice"), slow_equity(h.actor, "alice", D(1000), marks)
        assert (got, str(got)) == (want, str(want)), n  # same value and the same digits
    assert flat_after_a_fill > 5  # flat positions (and their realized pnl) were part of it
    assert h.actor.equity("bob") == D(500)


def test_the_client_endpoint_answers_one_clients_book_and_nothing_of_another():
    h = Harness()
    h.send(fill(1, "buy", "1", "100", "1"), fill(2, "sell", "1", "110", "1"), fill(3, "buy", "2", "105", "2"),
           fill(4, "sell", "3", "100", "3", client="bob"), snapshot("120"))
    alice = h.actor.answer_client("bosun.portfolio.client.alice")
    # alice: one round trip 100 -> 110 on 1, fees 2: +8; now long 2 at 105, fee 2, marked at 120: +30
    assert alice["client"] == "alice" and alice["capital"] == D(1000)
    assert alice["pnl"] == {"total": D(36), "realized": D(6), "unrealized": D(30), "fees": D(4)}
    assert alice["equity"] == D(1036)
    assert alice["exposure"] == {"gross": D(240), "net": D(240)}
    assert [(p["symbol"], p["qty"], p["mark"]) for p in alice["positions"]] == [("BTCUSDT", D(2), D(120))]
    assert alice["metrics"]["num_trades"] == 1 and alice["metrics"]["by_symbol"]["BTCUSDT"]["pnl"] == D(8)
    bob = h.actor.answer_client("bosun.portfolio.client.bob")
    assert bob["exposure"] == {"gross": D(360), "net": D(-360)} and bob["metrics"]["num_trades"] == 0
    # nothing of bob's in alice's reply (his fill ids, quantities, fees), and the reverse
    assert "bob" not in repr(alice) and "-3" not in repr(alice) and "alice" not in repr(bob)
    assert h.actor.answer_client("bosun.portfolio.client.carol") == {"error": "the portfolio has no client 'carol'"}


def test_bosun_status_client_renders_the_endpoints_json_answer():
    import json

    from bosun.apps import control
    from bosun.runtime.service import _json

    h = Harness()
    h.send(fill(1, "buy", "1", "100", "1"), snapshot("120"))
    text = control.render_client(json.loads(_json.encode(h.actor.answer_client("bosun.portfolio.client.alice"))))
    assert "client       alice  equity 1019" in text
    assert "exposure     gross 120  net 120" in text
    assert "position     binance.BTCUSDT" in text and "mark 120" in text
    assert "execution    orders 0  rejected 0  fill ratio None  slippage None bps  ack p50 None ms" in text


def test_the_client_endpoint_carries_the_execution_quality_of_the_clients_own_orders():
    from proto.events import OrderAccepted, OrderRejected, SubmitOrder, TargetApproved, TargetPosition

    def decided(n: int, client: str, side: str, qty: str, price: str) -> list:
        target = TargetPosition(id=f"t{n}", ts_event=n * 1_000 - 500, client=client, venue="binance",
                                symbol="BTCUSDT", qty=D(qty), strategy="sma", price=D(price))
        order = SubmitOrder(id=f"order-{n}", ts_event=target.ts_event, client=client, venue="binance",
                            symbol="BTCUSDT", side=side, qty=D(qty), order_type="market", target_id=target.id)
        return [TargetApproved(id=target.id, ts_event=target.ts_event, target=target), order]

    h = Harness(execution_quality=True)
    h.send(*decided(1, "alice", "buy", "1", "99"),
           OrderAccepted(id="order-1", ts_event=1_000 - 300, client_order_id="order-1", venue_order_id="v1",
                         client="alice", venue="binance", symbol="BTCUSDT"),
           fill(1, "buy", "1", "100"),
           *decided(2, "bob", "sell", "3", "101"),
           OrderRejected(id="order-2", ts_event=2_000, client_order_id="order-2", client="bob", venue="binance",
                         symbol="BTCUSDT", reason="insufficient balance"))
    alice = h.actor.answer_client("bosun.portfolio.client.alice")["metrics"]["execution"]
    # alice's one order: bought at 100 against 99 decided (+1 on 99 of notional), acked 200 ns after it
    assert (alice["orders"], alice["rejected"], alice["fills"], alice["fill_ratio"]) == (1, 0, 1, 1.0)
    assert alice["slippage_cost"] == D(1) and alice["slippage_bps"] == float(D(1) / D(99) * 10_000)
    assert alice["order_to_ack_ms"] == {"p50": 0.0002, "p95": 0.0002, "max": 0.0002}
    assert list(alice["by_venue"]) == ["binance"] and alice["by_venue"]["binance"]["orders"] == 1
    bob = h.actor.answer_client("bosun.portfolio.client.bob")["metrics"]["execution"]
    assert (bob["orders"], bob["rejected"], bob["order_success_rate"], bob["fills"]) == (1, 1, 0.0, 0)
    assert h.actor.answer_client("bosun.portfolio.client.carol") == {"error": "the portfolio has no client 'carol'"}
    backtest = Harness()  # without: the inputs a backtest's portfolio reads, and no execution quality asked of it
    assert [i.subject for i in backtest.actor.inputs()] == ["order.filled.>", "md.funding.>", "$KV.prices.>"]
