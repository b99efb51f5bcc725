"""`bosun halt [--client C] [--flatten]`, `bosun reduce [--client C]`, `bosun resume [--client C]`:
a person setting a scope's trading state in KV `control` (bosun.model.trading). Risk publishes
each change as TradingStateChanged, naming who (the note these commands write: the command, the
user and the host) and why (`--reason`).

- Without --client: the global scope. `halt` and `resume` flip the kill switch exactly as
  `nats pub '$KV.control.trading_enabled' false|true` does; `reduce` sets `state.global`, and
  `resume` sets it back to active.
- With --client C: the client's own switch `trading_enabled.C` (halt, resume) and its scope's
  state `state.client.C` (reduce, resume); `resume --client C` also resumes each of its markets a
  circuit breaker halted (`state.market.C.*`).
- `--flatten` then closes every open position in the scope: a target of 0 with reason
  `kill_switch` per position execution holds, which execution places as reduce-only market orders."""

from __future__ import annotations

import getpass
import socket
import time
from decimal import Decimal
from typing import Any

from nats.js.errors import NoKeysError

from bosun.apps import control
from bosun.model.trading import ACTIVE, GLOBAL, REDUCING, client_scope, state_value
from proto import codec
from proto import events as ev
from proto import subjects as sj

FLATTEN_STRATEGY = "bosun halt --flatten"


def _who(command: str) -> str:
    return f"bosun {command} ({getpass.getuser()}@{socket.gethostname()})"


async def set_state(kv, scope: str, state: str, note: str) -> None:
    await kv.put(sj.state_key(scope), state_value(state, note))  # type: ignore[arg-type]


async def _market_scopes(kv, client: str) -> list[str]:
    prefix = f"{sj.STATE_KEY}.market.{client}."
    try:
        return [key.split(".", 1)[1] for key in await kv.keys() if key.startswith(prefix)]
    except NoKeysError:
        return []


async def run(nc, command: str, client: str | None, reason: str | None, flatten: bool,
              positions: dict[str, str] | None = None) -> list[str]:
    """Carry out one command; returns the lines to print. `positions` (client.venue.symbol -> qty,
    as execution's status has them) is what --flatten closes."""
    js = nc.jetstream()
    kv = await js.key_value(sj.CONTROL_BUCKET)
    note = f"{_who(command)}: {reason or f'a person ran bosun {command}'}"
    lines: list[str] = []
    if client is None:
        if command == "reduce":
            await set_state(kv, GLOBAL, REDUCING, note)
            lines.append("trading REDUCING")
        else:
            enabled = command == "resume"
            await control.set_trading(nc, enabled)
            if enabled:
                await set_state(kv, GLOBAL, ACTIVE, note)
            lines.append(f"trading {'ON' if enabled else 'OFF'}")
    else:
        sj.check_token(client, "client id")
        if command == "reduce":
            await set_state(kv, client_scope(client), REDUCING, note)
        else:
            await kv.put(sj.client_switch_key(client), codec.encode_trading_enabled(command == "resume"))
        if command == "resume":
            for scope in [client_scope(client), *await _market_scopes(kv, client)]:
                await set_state(kv, scope, ACTIVE, note)
        word = {"halt": "OFF", "reduce": "REDUCING", "resume": "ON"}[command]
        lines.append(f"trading {word} for client {client}")
    if flatten:
        lines += await _flatten(js, client, positions or {})
    return lines


async def _flatten(js, client: str | None, positions: dict[str, str]) -> list[str]:
    lines = []
    now = time.time_ns()
    for key, qty in sorted(positions.items()):
        owner, venue, symbol = key.split(".")
        if client is not None and owner != client:
            continue
        price = await _price(js, venue, symbol)
        if price is None:
            lines.append(f"not flattened: {key} ({qty}): no price for {venue}.{symbol} in KV prices")
            continue
        target = ev.TargetPosition(id=f"flatten.{key}.{now}", ts_event=now, client=owner, venue=venue, symbol=symbol,
                                   qty=Decimal(0), strategy=FLATTEN_STRATEGY, price=price, reason="kill_switch")
        await js.publish(sj.subject_for(target), codec.encode(target), headers={"Nats-Msg-Id": ev.msg_id(target)})
        lines.append(f"flattening {key}: {qty} -> 0 (target {target.id})")
    return lines or ["nothing to flatten"]


async def _price(js, venue: str, symbol: str) -> Any:
    try:
        kv = await js.key_value(sj.PRICES_BUCKET)
        return codec.decode((await kv.get(sj.price_key(venue, symbol))).value, ev.PriceSnapshot).price
    except Exception:  # noqa: BLE001 - no bucket, no key, or a value it cannot read: no price
        return None
