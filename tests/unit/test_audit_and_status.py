"""`bosun audit`'s filters and time arguments, and the scopes, breakers and breaches `bosun status` prints."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal as D

import pytest

from bosun.apps import audit_cli
from bosun.apps.control import render, render_line
from proto import events as ev

NOW = datetime(2026, 12, 6, 4, 0, tzinfo=timezone.utc)
TARGET = ev.TargetPosition(id="t1", ts_event=1, client="alice", venue="binance", symbol="BTCUSDT", qty=D(1),
                           strategy="s", price=D(100))
APPROVED = ev.TargetApproved(id="t1", ts_event=1, target=TARGET)
CLAMPED = ev.RiskLimitBreached(id="t1.max_position", ts_event=1, client="alice", venue="binance", symbol="BTCUSDT",
                               limit="max_position", detail="d", target_id="t1", action="clamped")
REJECTED = ev.RiskLimitBreached(id="t2.x", ts_event=1, client="bob", venue="binance", symbol="BTCUSDT",
                                limit="guard.price_band", detail="d", target_id="t2")
TRIP = ev.TradingStateChanged(id="s1", ts_event=1, enabled=False, reason="r", scope="market.alice.binance.BTCUSDT",
                              state="halted", by="breaker stale_price")
KILL = ev.TradingStateChanged(id="s2", ts_event=1, enabled=False, reason="r")
EVENTS = [APPROVED, CLAMPED, REJECTED, TRIP, KILL]


@pytest.mark.parametrize("text, expected", [
    ("15m", datetime(2026, 12, 6, 3, 45, tzinfo=timezone.utc)),
    ("2h", datetime(2026, 12, 6, 2, 0, tzinfo=timezone.utc)),
    ("2026-12-05T10:00:00Z", datetime(2026, 12, 5, 10, 0, tzinfo=timezone.utc)),
    ("2026-12-05T10:00:00", datetime(2026, 12, 5, 10, 0, tzinfo=timezone.utc)),
])
def test_since_is_a_time_or_a_span_back(text, expected) -> None:
    assert audit_cli.since_time(text, NOW) == expected


@pytest.mark.parametrize("text", ["yesterday", "5 minutes", "-3m"])
def test_a_since_it_cannot_read_is_refused_by_name(text) -> None:
    with pytest.raises(ValueError, match=f"--since {text!r}"):
        audit_cli.since_time(text, NOW)


@pytest.mark.parametrize("client, kind, kept", [
    (None, None, EVENTS),
    ("alice", None, [APPROVED, CLAMPED, TRIP]),
    (None, "approve", [APPROVED]),
    (None, "clamp", [CLAMPED]),
    (None, "reject", [REJECTED]),
    (None, "guard", [REJECTED]),
    (None, "state", [TRIP, KILL]),
    (None, "breaker", [TRIP]),
    ("alice", "TradingStateChanged", [TRIP]),
])
def test_audit_keeps_what_client_and_kind_ask_for(client, kind, kept) -> None:
    keep = audit_cli.keep_for(client, kind)
    assert [e for e in EVENTS if keep(e)] == kept


def test_an_unknown_kind_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match="--kind 'verdicts'.*approve.*TargetApproved"):
        audit_cli.kind_filter("verdicts")


def test_an_audit_line_is_json_with_the_event_as_it_was() -> None:
    line = audit_cli.line(7, "risk.breach.alice.binance.BTCUSDT", CLAMPED)
    assert line.startswith('{"seq":7,"time":"1970-01-01T00:00:00.000000Z","subject":"risk.breach.alice.binance.'
                           'BTCUSDT","kind":"RiskLimitBreached","event":{"type":"RiskLimitBreached"')
    assert '"action":"clamped"' in line


def test_status_shows_each_restricted_scope_the_breakers_and_the_newest_breaches() -> None:
    risk = {"approved": 1, "breached": 1, "breaches_by_limit": {}, "limits": {}, "limit_state": {},
            "scopes": {"market.alice.binance.BTCUSDT": "halted", "switch.bob": "halted"},
            "breakers": {"alice": {"stale_price": "a price older than 2000 ms"}},
            "last_breaches": [{"at": "2026-12-06T03:00:00Z", "scope": "market.alice.binance.BTCUSDT",
                               "limit": "breaker.stale_price", "detail": "the price is 3 s old"}]}
    text = render({"trading_enabled": True, "prices": [], "risk": risk, "execution": None, "portfolio": None})
    assert "scope        market.alice.binance.BTCUSDT    HALTED" in text
    assert "scope        switch.bob" in text
    assert "breaker      alice      stale_price          a price older than 2000 ms" in text
    assert "breach       2026-12-06T03:00:00Z  market.alice.binance.BTCUSDT  breaker.stale_price: the price" in text
    line = render_line({"trading_enabled": True, "prices": [], "risk": risk, "execution": None, "portfolio": None})
    assert line.startswith("trading ON | market.alice.binance.BTCUSDT HALTED | switch.bob HALTED |")  # bosun up's
    assert "| breaches 1" in line
