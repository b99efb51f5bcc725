"""Every subject, in one place. Tokens after the kind are client / venue / symbol, so a
service can be partitioned by subscribing to a narrower filter.

KV buckets are addressed by the subject a KV put publishes to (`$KV.<bucket>.<key>`):
the in-process bus and the NATS binding route them the same way."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from proto import events as ev

TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")

PRICES_BUCKET = "prices"
CONTROL_BUCKET = "control"
TRADING_ENABLED_KEY = "trading_enabled"
STATE_KEY = "state"  # a scope's trading state: state.global, state.client.<c>, state.market.<c>.<venue>.<symbol>

BARS = "md.bar.>"
TRADES = "md.trade.>"
QUOTES = "md.quote.>"
MARKET_DATA = "md.>"  # every kind above, and funding rates: one consumer keeps their stream order
SIGNALS = "signal.detected.>"
TARGETS = "target.proposed.>"
APPROVED = "target.approved.>"
BREACHES = "risk.breach.>"
ORDERS = "order.>"
SUBMIT = "order.submit.>"
ACCEPTED = "order.accepted.>"
REJECTED = "order.rejected.>"
CANCEL = "order.cancel.>"
MODIFY = "order.modify.>"
CANCEL_ALL = "order.cancel_all.>"
FILLS = "order.filled.>"
POSITIONS = "position.changed.>"
FUNDING_RATES = "md.funding.>"
FUNDING_PAID = "ledger.funding.>"
EQUITY = "ledger.equity.>"
TRADING_STATE = "trading.state"
PRICES = f"$KV.{PRICES_BUCKET}.>"
TRADING_ENABLED = f"$KV.{CONTROL_BUCKET}.{TRADING_ENABLED_KEY}"
# Request/reply: the portfolio service answers one client's positions, PnL, exposure and metrics.
PORTFOLIO_CLIENT = "bosun.portfolio.client.*"
CLIENT_SWITCHES = f"{TRADING_ENABLED}.*"  # a client's own kill switch: trading_enabled.<client>
SCOPE_STATES = f"$KV.{CONTROL_BUCKET}.{STATE_KEY}.>"


def check_token(value: str, what: str) -> str:
    """A subject token: letters, digits, '_' and '-' (no '.', '*', '>' or spaces)."""
    if not TOKEN.match(value):
        raise ValueError(f"{what} {value!r} is not a valid subject token: use letters, digits, '_' or '-'")
    return value


def price_key(venue: str, symbol: str) -> str:
    return f"{venue}.{symbol}"


def price(venue: str, symbol: str) -> str:
    return f"$KV.{PRICES_BUCKET}.{venue}.{symbol}"


def portfolio_client(client: str) -> str:
    return f"bosun.portfolio.client.{client}"
def client_switch_key(client: str) -> str:
    return f"{TRADING_ENABLED_KEY}.{client}"


def state_key(scope: str) -> str:
    """The control key of a scope's state (scopes: bosun.model.trading)."""
    return f"{STATE_KEY}.{scope}"


def dead_letter(service: str) -> str:
    return f"dlq.{service}"


# Subject prefixes of the events addressed by client / venue / symbol, and by venue / symbol.
_BY_CLIENT: dict[type, str] = {
    ev.TargetPosition: "target.proposed",
    ev.RiskLimitBreached: "risk.breach",
    ev.SubmitOrder: "order.submit",
    ev.CancelOrder: "order.cancel",
    ev.ModifyOrder: "order.modify",
    ev.CancelAllOrders: "order.cancel_all",
    ev.OrderModified: "order.modified",
    ev.OrderAccepted: "order.accepted",
    ev.OrderRejected: "order.rejected",
    ev.OrderCanceled: "order.canceled",
    ev.OrdersCanceled: "order.canceled_all",
    ev.OrderFilled: "order.filled",
    ev.VenueStateReported: "order.venue_state",
    ev.ReconciliationReport: "order.reconciled",
    ev.PositionChanged: "position.changed",
    ev.FundingPaid: "ledger.funding",
}
_BY_MARKET: dict[type, str] = {ev.Bar: "md.bar", ev.Trade: "md.trade", ev.PriceSnapshot: f"$KV.{PRICES_BUCKET}",
                               ev.FundingRateSettled: "md.funding", ev.Quote: "md.quote"}

# The rest, one rule each. (A dict, not `match`: a class pattern that misses costs an
# isinstance check through msgspec's metaclass, several hundred ns, on every event.)
_OTHER: dict[type, Callable[[Any], str]] = {
    ev.SignalDetected: lambda e: f"signal.detected.{e.strategy}.{e.venue}.{e.symbol}",
    ev.TargetApproved: lambda e: f"target.approved.{e.target.client}.{e.target.venue}.{e.target.symbol}",
    ev.TradingStateChanged: lambda e: TRADING_STATE,
    ev.MarketHalted: lambda e: f"order.market_halted.{e.venue}.{e.symbol}",
    ev.DeadLetter: lambda e: dead_letter(e.service),
    ev.EquitySnapshot: lambda e: f"ledger.equity.{e.client}",
}


# Subjects by market (venue, symbol) and by client (client, venue, symbol), each made once: several per
# bar and per order otherwise, and a string made anew also has its hash computed anew by every dict
# that routes it. Per type: the last subject made with the strings it was made of, found by their
# identity (a market's and a client's events share them: `is` tests, no lookup; one tuple, so a
# reader never sees half an update), and a table of those made, bounded: cleared when it holds this many.
MAX_SUBJECTS = 100_000


class _Subjects:
    __slots__ = ("prefix", "last", "made")

    def __init__(self, prefix: str, parts: int) -> None:
        self.prefix = prefix
        self.last: tuple[str | None, ...] = (*(None,) * parts, "")  # no event's strings are None
        self.made: dict[tuple[str, ...], str] = {}

    def make(self, *parts: str) -> str:
        subject = self.made.get(parts)
        if subject is None:
            if len(self.made) >= MAX_SUBJECTS:
                self.made.clear()
            subject = self.made[parts] = ".".join((self.prefix, *parts))
        self.last = (*parts, subject)
        return subject


_BY_MARKET_SUBJECTS: dict[type, _Subjects] = {kind: _Subjects(p, 2) for kind, p in _BY_MARKET.items()}
_BY_CLIENT_SUBJECTS: dict[type, _Subjects] = {kind: _Subjects(p, 3) for kind, p in _BY_CLIENT.items()}


def subject_for(event: ev.Event) -> str:
    """Where an event is published. One rule per type, so no publisher spells a subject."""
    kind = type(event)
    market = _BY_MARKET_SUBJECTS.get(kind)  # first: market data is most of the traffic
    if market is not None:
        venue, symbol, subject = market.last
        if event.symbol is symbol and event.venue is venue:  # type: ignore[attr-defined]
            return subject  # type: ignore[return-value]
        return market.make(event.venue, event.symbol)  # type: ignore[attr-defined]
    by_client = _BY_CLIENT_SUBJECTS.get(kind)
    if by_client is not None:
        client, venue, symbol, subject = by_client.last
        if event.symbol is symbol and event.client is client and event.venue is venue:  # type: ignore[attr-defined]
            return subject  # type: ignore[return-value]
        return by_client.make(event.client, event.venue, event.symbol)  # type: ignore[attr-defined]
    other = _OTHER.get(kind)
    if other is not None:
        return other(event)
    raise TypeError(f"no subject for {type(event).__name__}")


def matches(pattern: str, subject: str) -> bool:
    """NATS wildcard matching: `*` is one token, a trailing `>` one or more."""
    p, s = pattern.split("."), subject.split(".")
    for i, tok in enumerate(p):
        if tok == ">":
            return len(s) > i
        if i >= len(s) or (tok != "*" and tok != s[i]):
            return False
    return len(p) == len(s)
