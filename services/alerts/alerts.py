"""What a person is told: the Alert value, how events become alerts, and how an alert
looks in a Discord or Slack webhook message."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from proto import events as ev

Severity = Literal["info", "warning", "critical"]

_ICON: dict[str, str] = {"info": "ℹ️", "warning": "⚠️", "critical": "🚨"}
DISCORD_MAX_CONTENT = 2000  # Discord refuses longer `content` with a 400
SLACK_MAX_TEXT = 3000  # Slack truncates long messages; keep them readable


class Alert(msgspec.Struct, frozen=True, kw_only=True):
    key: str  # de-duplication key: the same key within the window is one alert
    severity: Severity
    title: str
    text: str
    ts_event: int  # when the fact behind the alert happened, ns UTC


def breach_key(breach: ev.RiskLimitBreached) -> str:
    return f"breach.{breach.client}.{breach.venue}.{breach.symbol}.{breach.limit}"


_STATES = ("active", "reducing", "halted")


def trading_key(enabled: bool, scope: str = "global", state: str = "") -> str:
    """The global kill switch keeps its two keys; a scope's states (and the global REDUCING) one each."""
    if scope == "global" and state != "reducing":
        return f"trading.{enabled}"
    return f"trading.{scope}.{state or ('active' if enabled else 'halted')}"


def scope_keys(scope: str) -> set[str]:
    """Every key a scope's state alerts use: a flip clears the others, so that it is always news."""
    return {trading_key(state != "halted", scope, state) for state in _STATES}


def _trading_alert(event: ev.TradingStateChanged) -> Alert:
    state = event.state or ("active" if event.enabled else "halted")
    where = "" if event.scope == "global" else f": {event.scope}"
    by = f" (by {event.by})" if event.by else ""
    title, severity = {"halted": ("Trading HALTED", "critical"), "reducing": ("Trading REDUCING", "critical"),
                       "active": ("Trading resumed", "info")}[state]
    return Alert(key=trading_key(event.enabled, event.scope, event.state), severity=severity,  # type: ignore[arg-type]
                 title=f"{title}{where}", text=f"{event.reason}{by}", ts_event=event.ts_event)


def alert_for(event: ev.RiskLimitBreached | ev.TradingStateChanged) -> Alert:
    match event:
        case ev.RiskLimitBreached(limit=limit) if limit.startswith("guard."):  # execution's guard refused
            return Alert(
                key=breach_key(event), severity="critical", title=f"Risk and execution disagree: {event.limit}",
                text=f"client {event.client}, venue {event.venue}, symbol {event.symbol}: {event.detail}",
                ts_event=event.ts_event)
        case ev.RiskLimitBreached():
            return Alert(
                key=breach_key(event), severity="warning",
                title=f"Risk limit breached: {event.limit}",
                text=f"client {event.client}, venue {event.venue}, symbol {event.symbol}: {event.detail}",
                ts_event=event.ts_event)
        case ev.TradingStateChanged():
            return _trading_alert(event)
    raise TypeError(f"no alert for {type(event).__name__}")


def suppressed_summary(count: int, max_per_minute: int, ts_event: int) -> Alert:
    return Alert(key="alerts.suppressed", severity="warning", title=f"{count} alerts suppressed",
                 text=f"{count} alerts were held back by the limit of {max_per_minute} alerts per minute",
                 ts_event=ts_event)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def discord_payload(alert: Alert) -> dict[str, Any]:
    content = f"{_ICON[alert.severity]} **{alert.title}**\n{alert.text}"
    # No mentions: an event's free text must never ping @everyone.
    return {"content": _clip(content, DISCORD_MAX_CONTENT), "allowed_mentions": {"parse": []}}


def _slack_escape(text: str) -> str:
    # Slack reads <...> as links and mentions (<!channel>); free text must stay text.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(alert: Alert) -> dict[str, Any]:
    text = f"{_ICON[alert.severity]} *{_slack_escape(alert.title)}*\n{_slack_escape(alert.text)}"
    return {"text": _clip(text, SLACK_MAX_TEXT)}
