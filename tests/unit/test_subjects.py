"""Every event has exactly one subject, and every subject lands in exactly one stream."""

from __future__ import annotations

from decimal import Decimal

import pytest

from proto import events as ev
from proto import streams
from proto import subjects as sj

D = Decimal(1)
CLIENT = dict(client="alice", venue="binance", symbol="BTCUSDT")
TARGET = ev.TargetPosition(id="t", ts_event=1, qty=D, strategy="s", price=D, **CLIENT)
EXAMPLES = [
    (ev.Bar(id="b", ts_event=1, venue="binance", symbol="BTCUSDT", interval="1m", ts_open=0, open=D, high=D, low=D,
            close=D, volume=D), "md.bar.binance.BTCUSDT", "MARKET"),
    (ev.Trade(id="t", ts_event=1, venue="binance", symbol="BTCUSDT", price=D, qty=D, aggressor="buy"),
     "md.trade.binance.BTCUSDT", "MARKET"),
    (ev.PriceSnapshot(id="p", ts_event=1, venue="binance", symbol="BTCUSDT", price=D),
     "$KV.prices.binance.BTCUSDT", None),
    (ev.SignalDetected(id="s", ts_event=1, strategy="sma", venue="binance", symbol="BTCUSDT", direction=1, price=D),
     "signal.detected.sma.binance.BTCUSDT", "SIGNALS"),
    (TARGET, "target.proposed.alice.binance.BTCUSDT", "TARGETS"),
    (ev.TargetApproved(id="t", ts_event=1, target=TARGET), "target.approved.alice.binance.BTCUSDT", "TARGETS"),
    (ev.RiskLimitBreached(id="r", ts_event=1, limit="x", detail="y", target_id="t", **CLIENT),
     "risk.breach.alice.binance.BTCUSDT", "RISK"),
    (ev.TradingStateChanged(id="x", ts_event=1, enabled=False, reason="r"), "trading.state", "RISK"),
    (ev.OrderFilled(id="f", ts_event=1, client_order_id="o", side="buy", qty=D, price=D, fee=D, **CLIENT),
     "order.filled.alice.binance.BTCUSDT", "ORDERS"),
    (ev.OrderCanceled(id="c", ts_event=1, client_order_id="o", reason="r", **CLIENT),
     "order.canceled.alice.binance.BTCUSDT", "ORDERS"),
    (ev.PositionChanged(id="f", ts_event=1, qty=D, avg_price=D, realized_pnl=D, unrealized_pnl=D, fees=D,
                        fill_id="f", **CLIENT), "position.changed.alice.binance.BTCUSDT", "POSITIONS"),
    (ev.DeadLetter(id="d", ts_event=1, service="risk", subject="x", reason="r", payload=b""), "dlq.risk", "DLQ"),
    (ev.FundingRateSettled(id="f", ts_event=1, venue="binance_usdm", symbol="BTCUSDT", rate=D),
     "md.funding.binance_usdm.BTCUSDT", "MARKET"),
    (ev.FundingPaid(id="f", ts_event=1, qty=D, mark_price=D, rate=D, amount=D, funding=D, **CLIENT),
     "ledger.funding.alice.binance.BTCUSDT", "LEDGER"),
    (ev.EquitySnapshot(id="e", ts_event=1, client="alice", capital=D, realized_pnl=D, unrealized_pnl=D, fees=D,
                       funding=D, equity=D, gross_exposure=D, net_exposure=D), "ledger.equity.alice", "LEDGER"),
]


@pytest.mark.parametrize("event, subject, stream", EXAMPLES, ids=[type(e[0]).__name__ for e in EXAMPLES])
def test_each_event_has_its_subject_and_stream(event, subject, stream):
    assert sj.subject_for(event) == subject
    found = streams.stream_for(subject)
    assert (found.name if found else None) == stream


def test_no_two_streams_capture_one_subject():
    patterns = [p for s in streams.STREAMS for p in s.subjects]
    for i, a in enumerate(patterns):
        for b in patterns[i + 1:]:
            assert not (sj.matches(a, b) or sj.matches(b, a)), (a, b)


@pytest.mark.parametrize("pattern, subject, expected", [
    ("md.>", "md.bar.binance.BTCUSDT", True), ("md.>", "md", False), ("order.*.alice.>", "order.filled.alice.b.c", True),
    ("order.*.alice.>", "order.filled.bob.b.c", False), ("a.*", "a.b.c", False), ("a.b", "a.b", True),
])
def test_wildcards_match_as_nats_does(pattern, subject, expected):
    assert sj.matches(pattern, subject) is expected


def test_tokens_are_checked():
    assert sj.check_token("BTC-USDT_1", "symbol") == "BTC-USDT_1"
    with pytest.raises(ValueError, match="symbol 'BTC.USDT' is not a valid subject token"):
        sj.check_token("BTC.USDT", "symbol")


def test_no_stream_a_service_rebuilds_from_ages_out():
    """Risk and signal rebuild positions from each subject's newest PositionChanged (LATEST), and
    execution and risk their books from ORDERS: those streams keep everything, and refuse when full."""
    from bosun.apps.config import ClientConfig, Config
    from bosun.runtime.actor import Delivery
    from bosun.runtime.clock import SimClock
    from bosun.runtime.inproc import InProcessBus
    from services.risk.actor import RiskActor
    from services.risk.config import LimitsConfig
    from services.signal.actor import SignalActor

    config = Config(clients=[ClientConfig(id="alice", risk=LimitsConfig(max_daily_loss=Decimal(100)))])
    actors = [SignalActor(SimClock(), InProcessBus(), config.signal_config()),
              RiskActor(SimClock(), InProcessBus(), config.risk_config())]
    rebuilt = {streams.stream_for(i.subject.replace(">", "x").replace("*", "x")).name
               for a in actors for i in a.inputs()
               if i.delivery in (Delivery.LATEST, Delivery.REPLAY) and not i.subject.startswith("$KV.")}
    assert "POSITIONS" in rebuilt
    for spec in streams.STREAMS:
        if spec.name in rebuilt | {"ORDERS"}:
            assert (spec.max_age_s, spec.discard) == (0, "new"), spec.name
