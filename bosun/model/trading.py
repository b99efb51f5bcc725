"""Trading states per scope, the rule risk and execution both apply.

A scope is the whole platform ("global"), one client ("client.<client>") or one client's market
("market.<client>.<venue>.<symbol>"). Each is ACTIVE, REDUCING (only what cuts exposure passes)
or HALTED (the same, and every working order in the scope is cancelled); a target or order meets
the strictest state of the scopes it falls in. What sets them, all in KV `control`:

- `trading_enabled`: the global kill switch (false, deleted or unreadable: HALTED);
- `trading_enabled.<client>`: a client's own switch, the same words (never set: no restriction);
- `state.<scope>`: `active`, `reducing` or `halted`, optionally followed by a note saying who and
  why (`halted breaker stale_price: ...`); deleted or unreadable: HALTED.

Lookups are O(1): only restricted scopes are kept, and with none the answer is one test."""

from __future__ import annotations

from typing import Literal, NamedTuple

from proto.codec import decode_trading_enabled

State = Literal["active", "reducing", "halted"]
ACTIVE: State = "active"
REDUCING: State = "reducing"
HALTED: State = "halted"
_RANK = {ACTIVE: 0, REDUCING: 1, HALTED: 2}
GLOBAL = "global"
MAX_NOTE = 200  # a state's note is for a person: one line


def client_scope(client: str) -> str:
    return f"client.{client}"


def market_scope(client: str, venue: str, symbol: str) -> str:
    return f"market.{client}.{venue}.{symbol}"


def switch_of(client: str) -> str:
    """Where ScopeStates keeps a client's own switch, apart from its `state.client.<c>`."""
    return f"switch.{client}"


def scope_client(scope: str) -> str | None:
    """The client a scope belongs to (None: global)."""
    return None if scope == GLOBAL else scope.split(".")[1]


def parse_state(value: bytes | None) -> tuple[State, str]:
    """A `state.<scope>` value as (state, note); ValueError naming the value when it is none."""
    if value is None:
        raise ValueError("the key was deleted")
    word, _, note = value.decode(errors="replace").strip().partition(" ")
    state = word.strip("\"'").lower()
    if state not in _RANK:
        raise ValueError(f"a trading state must be active, reducing or halted, got {value[:64]!r}")
    return state, note.strip()[:MAX_NOTE]  # type: ignore[return-value]


def state_value(state: State, note: str = "") -> bytes:
    return f"{state} {note}".strip()[: len(state) + 1 + MAX_NOTE].encode()


def stricter(a: State, b: State) -> State:
    return a if _RANK[a] >= _RANK[b] else b


def adds_allowed(state: State) -> bool:
    return state == ACTIVE


class ScopeStates:
    """The states in force: scope -> state, only the restricted ones; a client's switch is kept
    under `switch_of(client)`, apart from its scope's state, and the stricter of the two holds.
    The global kill switch is not here: it starts unknown (off) until its key is read, and each
    service keeps it as it always has."""

    __slots__ = ("restricted", "_by_client")

    def __init__(self) -> None:
        self.restricted: dict[str, State] = {}  # empty in the usual case: callers test it first
        self._by_client: dict[str, int] = {}  # client -> how many of its scopes are restricted

    def set(self, scope: str, state: State) -> State:
        """Set one scope's state; returns the one it had."""
        before = self.restricted.get(scope, ACTIVE)
        client = scope_client(scope)
        if state == ACTIVE:
            if self.restricted.pop(scope, None) is not None and client is not None:
                self._by_client[client] -= 1
        else:
            if scope not in self.restricted and client is not None:
                self._by_client[client] = self._by_client.get(client, 0) + 1
            self.restricted[scope] = state
        return before

    def get(self, scope: str) -> State:
        return self.restricted.get(scope, ACTIVE)

    def of(self, client: str, venue: str, symbol: str) -> tuple[State, str]:
        """The strictest state over the scopes a client's market falls in, and that scope."""
        restricted = self.restricted
        if not restricted:
            return ACTIVE, GLOBAL
        state, where = restricted.get(GLOBAL, ACTIVE), GLOBAL
        if self._by_client.get(client):
            for name in (switch_of(client), client_scope(client), market_scope(client, venue, symbol)):
                own = restricted.get(name, ACTIVE)
                if _RANK[own] > _RANK[state]:
                    state, where = own, name
        return state, client_scope(client) if where.startswith("switch.") else where

    def snapshot(self) -> dict[str, State]:
        return dict(sorted(self.restricted.items()))



class Change(NamedTuple):
    """What one control key now says: the ScopeStates name it sets, the state, who, why."""

    name: str
    state: State
    by: str
    why: str


def switch_change(key: str, value: bytes | None) -> Change:
    """`trading_enabled.<client>`: the client's own kill switch; deleted or unreadable is off."""
    client = key.split(".", 1)[1]
    if value is None:
        return Change(switch_of(client), HALTED, "client switch", f"{key} was deleted: counted as off")
    try:
        enabled = decode_trading_enabled(value)
    except ValueError as exc:
        return Change(switch_of(client), HALTED, "client switch", f"{key} is unreadable ({exc}): counted as off")
    return Change(switch_of(client), ACTIVE if enabled else HALTED, "client switch",
                  f"{key} set to {str(enabled).lower()}")


def scope_change(key: str, value: bytes | None) -> Change:
    """`state.<scope>`: a scope's state as a person or a breaker set it; deleted or unreadable is
    halted. ValueError when the key names no scope."""
    scope = key.split(".", 1)[1]
    parts = scope.split(".")
    if not (scope == GLOBAL or (parts[0], len(parts)) in (("client", 2), ("market", 4))):
        raise ValueError(f"{key}: not a scope (state.global, state.client.<client>, "
                         f"state.market.<client>.<venue>.<symbol>)")
    try:
        state, note = parse_state(value)
    except ValueError as exc:
        state, note = HALTED, f"control KV: {key}: {exc}, counted as halted"
    by, _, why = note.partition(": ")
    return Change(scope, state, by or "control KV", why or f"{key} set to {state}")


def shown(name: str) -> str:
    """The scope a ScopeStates name stands for (a client's switch: its client scope)."""
    return client_scope(name.split(".", 1)[1]) if name.startswith("switch.") else name
