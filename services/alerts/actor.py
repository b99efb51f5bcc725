"""The alerts service's logic: which events become alerts, and which alerts go out.

Decisions use only the injected clock. The same key within `dedup_window_s` of its last
send is a duplicate; at most `max_per_minute` alerts go out per rolling minute, and what
the limit holds back is reported as one summary once there is room again. "Trading
HALTED" is critical: it is never rate-limited (it is still de-duplicated)."""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Sequence

import msgspec

from bosun.runtime.actor import Actor, Delivery, Effect, Input, Outbox, event_input
from bosun.runtime.clock import Clock
from proto import events as ev
from proto import subjects as sj
from services.alerts.config import AlertsConfig
from services.alerts.alerts import Alert, alert_for, scope_keys, suppressed_summary

MINUTE_NS = 60_000_000_000


class SendAlert(msgspec.Struct, Effect, frozen=True):
    """Deliver `alert` to the configured webhooks (the edge queues it, bounded, and retries)."""

    alert: Alert


class AlertsActor(Actor):
    name = "alerts"

    def __init__(self, clock: Clock, out: Outbox, cfg: AlertsConfig) -> None:
        super().__init__(clock, out)
        if cfg.max_per_minute < 1:
            raise ValueError(f"alerts.max_per_minute must be >= 1, got {cfg.max_per_minute}")
        if cfg.dedup_window_s < 0:
            raise ValueError(f"alerts.dedup_window_s must be >= 0, got {cfg.dedup_window_s}")
        self.max_per_minute = cfg.max_per_minute
        self.dedup_window_ns = int(cfg.dedup_window_s * 1e9)
        # key -> when it was last sent, oldest first: expired keys are evicted from the
        # front. Sends are rate-limited, so this holds at most about
        # max_per_minute * window-in-minutes keys (plus the two trading keys).
        self._last_sent: OrderedDict[str, int] = OrderedDict()
        self._sent_times: deque[int] = deque()  # send times within the last minute
        self._held_back = 0  # rate-limited since the last summary
        self.sent = 0
        self.duplicates = 0
        self.rate_limited = 0

    def inputs(self) -> Sequence[Input]:
        return (
            event_input(sj.BREACHES, ev.RiskLimitBreached, self.on_risk_limit_breached, Delivery.DURABLE),
            event_input(sj.TRADING_STATE, ev.TradingStateChanged, self.on_trading_state_changed,
                        Delivery.DURABLE),
        )

    def on_risk_limit_breached(self, event: ev.RiskLimitBreached) -> None:
        self._consider(alert_for(event))

    def on_trading_state_changed(self, event: ev.TradingStateChanged) -> None:
        # A flip is news even within the window: halt, resume, halt again must say "halted".
        alert = alert_for(event)
        for key in scope_keys(event.scope) - {alert.key}:
            self._last_sent.pop(key, None)
        self._consider(alert)

    def on_summary_due(self, now: int) -> None:
        """Send the summary of rate-limited alerts if the rolling minute has room again.

        Handlers check before each decision; the process's clock also calls it on a timer so
        that a quiet period after a burst still reports what was held back."""
        self._expire(now)
        if self._held_back and len(self._sent_times) < self.max_per_minute:
            summary = suppressed_summary(self._held_back, self.max_per_minute, now)
            self._held_back = 0
            self._send(summary, now)

    def status(self) -> dict[str, int]:
        return {
            "sent": self.sent,
            "suppressed_duplicate": self.duplicates,
            "suppressed_rate_limited": self.rate_limited,
            "pending_summary": self._held_back,
            "dedup_keys": len(self._last_sent),
        }

    # --- decisions

    def _consider(self, alert: Alert) -> None:
        now = self.clock.now_ns()
        self.on_summary_due(now)
        last = self._last_sent.get(alert.key)
        if last is not None and now - last < self.dedup_window_ns:
            self.duplicates += 1
            return
        if alert.severity != "critical" and len(self._sent_times) >= self.max_per_minute:
            self.rate_limited += 1
            self._held_back += 1
            return
        self._last_sent.pop(alert.key, None)  # re-insert at the end: keeps oldest-first order
        self._last_sent[alert.key] = now
        self._send(alert, now)

    def _send(self, alert: Alert, now: int) -> None:
        self._sent_times.append(now)
        self.sent += 1
        self.out.effect(SendAlert(alert))

    def _expire(self, now: int) -> None:
        while self._sent_times and now - self._sent_times[0] >= MINUTE_NS:
            self._sent_times.popleft()
        while self._last_sent:
            key, ts = next(iter(self._last_sent.items()))
            if now - ts < self.dedup_window_ns:
                break
            del self._last_sent[key]
