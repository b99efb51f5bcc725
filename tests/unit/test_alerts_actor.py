"""The alerts actor on the in-process bus with a simulated clock: which alerts go out."""

from __future__ import annotations

import pytest

from bosun.runtime.actor import Effect
from bosun.runtime.clock import SimClock
from services.alerts.config import AlertsConfig
from bosun.runtime.inproc import InProcessBus
from proto import events as ev
from services.alerts.actor import AlertsActor, SendAlert
from services.alerts.alerts import Alert, alert_for, discord_payload, slack_payload

S = 1_000_000_000


class SentAlerts:
    """The SendAlert effects the actor asked for, in order."""

    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    def on_effect(self, effect: Effect) -> None:
        assert isinstance(effect, SendAlert)
        self.alerts.append(effect.alert)

    @property
    def titles(self) -> list[str]:
        return [a.title for a in self.alerts]


def breach(n: int = 0, *, limit: str = "max_position", symbol: str = "BTCUSDT", ts: int = 0) -> ev.RiskLimitBreached:
    return ev.RiskLimitBreached(id=f"b{n}", ts_event=ts, client="alice", venue="binance", symbol=symbol,
                                limit=limit, detail="asked 2 BTC, limit 1 BTC", target_id=f"t{n}")


def trading(enabled: bool, n: int = 0) -> ev.TradingStateChanged:
    return ev.TradingStateChanged(id=f"s{n}", ts_event=0, enabled=enabled, reason="operator")


class Rig:
    def __init__(self, **alerts: object) -> None:
        self.clock = SimClock(1_700_000_000 * S)
        self.bus = InProcessBus()
        self.notifier = SentAlerts()
        self.bus.on_effect(self.notifier.on_effect)
        config = AlertsConfig(**alerts)  # type: ignore[arg-type]
        self.actor = self.bus.attach(AlertsActor(self.clock, self.bus, config))

    def send(self, *events: ev.Event) -> None:
        for event in events:
            self.bus.publish(event)
        self.bus.drain()

    def advance(self, seconds: float) -> None:
        self.clock.advance_to(self.clock.now_ns() + int(seconds * S))


def test_a_breach_becomes_one_warning_naming_the_limit_and_where() -> None:
    rig = Rig()
    rig.send(breach(ts=123))
    assert len(rig.notifier.alerts) == 1
    alert = rig.notifier.alerts[0]
    assert alert.severity == "warning"
    assert alert.title == "Risk limit breached: max_position"
    assert alert.key == "breach.alice.binance.BTCUSDT.max_position"
    assert alert.ts_event == 123
    for part in ("alice", "binance", "BTCUSDT", "asked 2 BTC, limit 1 BTC"):
        assert part in alert.text
    assert rig.actor.status()["sent"] == 1


def test_the_same_breach_within_the_window_is_suppressed_and_passes_again_after_it() -> None:
    rig = Rig(dedup_window_s=300.0)
    rig.send(breach(0))
    rig.advance(299)
    rig.send(breach(1), breach(2))
    assert len(rig.notifier.alerts) == 1
    assert rig.actor.status()["suppressed_duplicate"] == 2
    rig.send(breach(3, limit="stale_price"))  # another key is not a duplicate
    assert len(rig.notifier.alerts) == 2
    rig.advance(1)  # 300 s after the first send
    rig.send(breach(4))
    assert rig.notifier.titles[-1] == "Risk limit breached: max_position"
    assert len(rig.notifier.alerts) == 3


def test_dedup_keys_are_evicted_once_expired() -> None:
    rig = Rig(dedup_window_s=10.0, max_per_minute=1000)
    rig.send(*(breach(i, symbol=f"SYM{i}") for i in range(50)))
    assert rig.actor.status()["dedup_keys"] == 50
    rig.advance(10)
    rig.send(breach(99, symbol="OTHER"))
    assert rig.actor.status()["dedup_keys"] == 1


def test_over_the_rate_limit_alerts_are_held_back_then_summarised_once_the_minute_reopens() -> None:
    rig = Rig(max_per_minute=3)
    rig.send(*(breach(i, symbol=f"SYM{i}") for i in range(5)))
    assert len(rig.notifier.alerts) == 3
    status = rig.actor.status()
    assert status["suppressed_rate_limited"] == 2 and status["pending_summary"] == 2

    rig.advance(59.9)  # the minute is still full: nothing new, no summary yet
    rig.send(breach(5, symbol="SYM5"))
    assert len(rig.notifier.alerts) == 3
    assert rig.actor.status()["pending_summary"] == 3

    rig.advance(0.1)
    rig.send(breach(6, symbol="SYM6"))
    summary = rig.notifier.alerts[3]
    assert summary.title == "3 alerts suppressed"
    assert rig.notifier.titles[4] == "Risk limit breached: max_position"
    assert rig.notifier.alerts[4].key.endswith("SYM6.max_position")
    assert rig.actor.status() == {"sent": 5, "suppressed_duplicate": 0, "suppressed_rate_limited": 3,
                                  "pending_summary": 0, "dedup_keys": 4}


def test_the_summary_clock_reports_after_a_quiet_period_without_a_new_alert() -> None:
    rig = Rig(max_per_minute=1)
    rig.send(breach(0, symbol="A"), breach(1, symbol="B"))
    rig.actor.on_summary_due(rig.clock.now_ns())
    assert rig.notifier.titles == ["Risk limit breached: max_position"]
    rig.advance(60)
    rig.actor.on_summary_due(rig.clock.now_ns())
    rig.actor.on_summary_due(rig.clock.now_ns())
    assert rig.notifier.titles[1:] == ["1 alerts suppressed"]


def test_halt_is_critical_and_passes_a_full_rate_limit() -> None:
    rig = Rig(max_per_minute=2)
    rig.send(breach(0, symbol="A"), breach(1, symbol="B"), breach(2, symbol="C"))
    assert len(rig.notifier.alerts) == 2
    rig.send(trading(False))
    halt = rig.notifier.alerts[-1]
    assert (halt.title, halt.severity, halt.key) == ("Trading HALTED", "critical", "trading.False")
    assert halt.text == "operator"
    rig.send(trading(True))  # resuming is info: the limit applies
    assert rig.notifier.titles[-1] == "Trading HALTED"
    assert rig.actor.status()["suppressed_rate_limited"] == 2


def test_halt_is_still_deduplicated_but_a_flip_back_and_forth_always_alerts() -> None:
    rig = Rig(dedup_window_s=300.0)
    rig.send(trading(False, 0), trading(False, 1))  # a repeat of the same state
    assert rig.notifier.titles == ["Trading HALTED"]
    rig.advance(1)
    rig.send(trading(True, 2))
    rig.advance(1)
    rig.send(trading(False, 3))
    assert rig.notifier.titles == ["Trading HALTED", "Trading resumed", "Trading HALTED"]
    assert rig.notifier.alerts[1].severity == "info"
    assert rig.actor.status()["suppressed_duplicate"] == 1


def test_bad_limits_fail_naming_the_setting() -> None:
    with pytest.raises(ValueError, match="alerts.max_per_minute"):
        Rig(max_per_minute=0)


def test_payloads_carry_the_alert_and_neutralise_mentions() -> None:
    alert = alert_for(ev.RiskLimitBreached(id="x", ts_event=0, client="c", venue="v", symbol="s",
                                           limit="max_position", detail="@everyone <!channel> " + "x" * 5000,
                                           target_id="t"))
    discord = discord_payload(alert)
    assert "**Risk limit breached: max_position**" in discord["content"]
    assert len(discord["content"]) <= 2000
    assert discord["allowed_mentions"] == {"parse": []}
    slack = slack_payload(alert)
    assert "*Risk limit breached: max_position*" in slack["text"]
    assert "<!channel>" not in slack["text"] and "&lt;!channel&gt;" in slack["text"]
