"""The simulator's matching, money and signature rules, on a small trades file in Binance's format."""

from __future__ import annotations

import hashlib
import hmac
from decimal import Decimal
from pathlib import Path

import pytest

from bosun.apps.exchange_sim.auth import Credentials, check_time, split_signature
from bosun.apps.exchange_sim.balances import Balances
from bosun.apps.exchange_sim.errors import BinanceError
from bosun.apps.exchange_sim.exchange import Exchange
from bosun.apps.exchange_sim.faults import decode_faults
from bosun.apps.exchange_sim.market import Replay

D = Decimal
# trade_id,price,qty,trade_time_ms,event_time_ms,is_buyer_maker,x_type,local_ts_ns
TRADES = [(100, "60000.00", "0.01000"), (101, "59990.00", "0.00300"), (102, "59980.00", "0.00400"),
          (103, "60010.00", "0.02000"), (104, "59900.00", "0.05000"),
          (105, "59000.01", "0.00001")]  # the finest decimals the file uses set tick and step
NOW = 1_800_000_000_000


@pytest.fixture
def exchange(tmp_path: Path) -> tuple[Exchange, list[dict[str, object]]]:
    path = tmp_path / "binance_spot_BTCUSDT_trades.csv"
    rows = [f"{i},{p},{q},{1723161255000 + i},{1723161255000 + i},true,," for i, p, q in TRADES]
    path.write_text("trade_id,price,qty,trade_time_ms,event_time_ms,is_buyer_maker,x_type,local_ts_ns\n"
                    + "\n".join(rows) + "\n")
    ex = Exchange(Replay([path]), Balances({"USDT": D(1000), "BTC": D("0.01")}), D("0.001"), lambda: NOW)
    events: list[dict[str, object]] = []
    ex.subscribers.append(events.extend)
    return ex, events


def order(ex: Exchange, **kw: object) -> object:
    args = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "time_in_force": "GTC", "qty": D("0.005"),
            "price": D(0), "stop_price": D(0), "quote_qty": D(0), "client_id": None, **kw}
    return ex.place(**args)  # type: ignore[arg-type]


def test_rules_are_learned_from_the_data(exchange: tuple[Exchange, list]) -> None:
    rules = exchange[0].rules["BTCUSDT"]
    assert (rules.base, rules.quote, rules.tick_size, rules.step_size) == ("BTC", "USDT", D("0.01"), D("0.00001"))
    assert exchange[0].last_price == {"BTCUSDT": D("60000.00")}  # the market opens with the first trade


def test_a_resting_buy_fills_partly_from_each_trade_at_its_price_then_frees_the_rest(exchange) -> None:
    ex, events = exchange
    o = order(ex, price=D("59995.00"))
    assert ex.balances.locked["USDT"] == D("0.005") * D("59995")
    ex.advance(trades=1)  # 0.003 at 59990: through the limit
    assert (o.status, o.filled) == ("PARTIALLY_FILLED", D("0.003"))
    ex.advance(trades=1)  # 0.004 at 59980: the remaining 0.002
    assert (o.status, o.filled, o.quote_filled) == ("FILLED", D("0.005"), D("0.005") * D("59995"))
    assert ex.balances.locked["USDT"] == 0
    assert ex.balances.free["USDT"] == D(1000) - D("0.005") * D("59995")
    assert ex.balances.free["BTC"] == D("0.01") + D("0.005") - D("0.000005")  # 10 bps of what was bought
    assert [(e["x"], e["X"], e["l"]) for e in events if e["e"] == "executionReport"] == [
        ("NEW", "NEW", "0.00000000"), ("TRADE", "PARTIALLY_FILLED", "0.00300000"), ("TRADE", "FILLED", "0.00200000")]


def test_better_price_first_then_time(exchange) -> None:
    ex, _ = exchange
    first, better = order(ex, price=D("59990.00")), order(ex, price=D("59995.00"))
    second = order(ex, price=D("59990.00"))
    ex.advance(trades=1)  # 0.003 at 59990
    assert [o.filled for o in (first, better, second)] == [0, D("0.003"), 0]
    ex.advance(trades=1)  # 0.004 at 59980
    assert [o.filled for o in (first, better, second)] == [D("0.002"), D("0.005"), 0]


def test_stop_loss_sells_at_the_print_that_reaches_it_and_take_profit_waits(exchange) -> None:
    ex, _ = exchange
    stop = order(ex, side="SELL", type="STOP_LOSS", time_in_force="", stop_price=D("59985.00"))
    take = order(ex, side="SELL", type="TAKE_PROFIT", time_in_force="", stop_price=D("60005.00"))
    assert ex.balances.locked["BTC"] == D("0.01")
    ex.advance(trades=2)  # 59990 does not reach the stop, 59980 does
    assert (stop.status, stop.fills[0].price, take.status) == ("FILLED", D("59980.00"), "NEW")
    ex.advance(trades=1)  # 60010
    assert (take.status, take.fills[0].price) == ("FILLED", D("60010.00"))


def test_market_orders_and_immediate_limits(exchange) -> None:
    ex, _ = exchange
    by_cost = order(ex, type="MARKET", time_in_force="", qty=D(0), quote_qty=D("100"))
    assert (by_cost.status, by_cost.qty, by_cost.fills[0].price) == ("FILLED", D("0.00166"), D("60000.00"))
    crossing = order(ex, side="SELL", price=D("59000.00"))
    assert (crossing.status, crossing.fills[0].price, crossing.fills[0].maker) == ("FILLED", D("60000.00"), False)
    ioc = order(ex, price=D("59000.00"), time_in_force="IOC")
    fok = order(ex, price=D("59000.00"), time_in_force="FOK")
    assert (ioc.status, fok.status, ex.balances.locked["USDT"]) == ("EXPIRED", "EXPIRED", 0)


def test_rejections(exchange) -> None:
    ex, _ = exchange
    cases = {"Filter failure: PRICE_FILTER": {"price": D("60000.005")},
             "Filter failure: LOT_SIZE": {"price": D("60000"), "qty": D("0.000001")},
             "Filter failure: NOTIONAL": {"price": D("100"), "qty": D("0.001")},
             "Account has insufficient balance for requested action.": {"price": D("60000"), "qty": D("1")}}
    for msg, kw in cases.items():
        with pytest.raises(BinanceError) as caught:
            order(ex, **kw)
        assert caught.value.msg == msg
    order(ex, price=D("50000"), client_id="c1")
    with pytest.raises(BinanceError, match="Duplicate order sent."):
        order(ex, price=D("50000"), client_id="c1")
    ex.cancel("BTCUSDT", None, "c1")
    assert order(ex, price=D("50000"), client_id="c1").status == "NEW"  # free again once the first is closed
    with pytest.raises(BinanceError, match="Invalid symbol."):
        order(ex, symbol="ETHUSDT", price=D(1))


def test_signatures_and_recv_window() -> None:
    creds = Credentials("key", "secret")
    query = "symbol=BTCUSDT&timestamp=1"
    good = hmac.new(b"secret", query.encode(), hashlib.sha256).hexdigest()
    payload, signature = split_signature(f"{query}&signature={good}", "")
    assert (payload, signature) == (query, good)
    creds.check_signature(payload, signature)
    with pytest.raises(BinanceError, match="Signature for this request is not valid."):
        creds.check_signature(payload + "0", signature)
    with pytest.raises(BinanceError) as caught:
        creds.check_key("other")
    assert caught.value.code == -2015 and "key" not in repr(creds) and "secret" not in repr(creds)
    check_time(str(NOW - 4_000), None, NOW)
    for stamp, window, code in ((NOW - 6_000, None, -1021), (NOW + 2_000, None, -1021), (NOW, "70000", -1131)):
        with pytest.raises(BinanceError) as caught:
            check_time(str(stamp), window, NOW)
        assert caught.value.code == code


def test_faults_name_what_is_wrong() -> None:
    assert decode_faults(b'{"throttles": 2, "throttle_status": 418}').throttle_status == 418
    for body, named in ((b'{"throtles": 1}', "throtles"), (b'{"throttle_status": 500}', "throttle_status"),
                        (b'{"server_errors": -1}', "server_errors")):
        with pytest.raises(ValueError, match=named):
            decode_faults(body)
