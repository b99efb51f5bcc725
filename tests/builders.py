"""Hand-written builders and helpers shared by the end-to-end tests."""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal

from nats.aio.client import Client

from bosun.runtime.urls import status_subject
from proto import codec
from proto import events as ev
from proto import subjects as sj

# One client, alice, following sma 5/20 on BTCUSDT with a fixed 0.01.
ALICE_SMA = """
[[strategies]]
name = "sma_btc"
symbol = "BTCUSDT"
params = { fast = 5, slow = 20 }

[[clients]]
id = "alice"
strategies = ["sma_btc"]
sizing = { kind = "fixed", qty = "0.01" }
[clients.venues.binance]
fee_bps = "10"
slippage_bps = "1"
"""


def target(n: int, qty: str, venue: str = "binance") -> ev.TargetPosition:
    return ev.TargetPosition(id=f"alice.t{n}", ts_event=time.time_ns(), client="alice", venue=venue,
                             symbol="BTCUSDT", qty=Decimal(qty), strategy="test", price=Decimal("60000"))


def bar_around(ts: int, price: str = "60000") -> ev.Bar:
    """A one-minute BTCUSDT bar that opened before `ts` and closed after it: a market order decided
    at `ts` does not fill on it (it opened before the decision) and rests until the next bar."""
    p = Decimal(price)
    return ev.Bar(id=f"b{ts}", ts_event=ts + 30_000_000_000, venue="binance", symbol="BTCUSDT", interval="1m",
                  ts_open=ts - 30_000_000_000, open=p, high=p, low=p, close=p, volume=Decimal(1))


def fresh_price() -> ev.PriceSnapshot:
    now = time.time_ns()
    return ev.PriceSnapshot(id=f"p{now}", ts_event=now, venue="binance", symbol="BTCUSDT", price=Decimal("60000"))


async def publish(nc: Client, event: ev.Event, *, dedup: bool = True, timeout: float = 5.0) -> None:
    """A JetStream publish as a service makes it (with Nats-Msg-Id unless `dedup` is off)."""
    headers = {"Nats-Msg-Id": ev.msg_id(event)} if dedup else None
    await nc.jetstream().publish(sj.subject_for(event), codec.encode(event), headers=headers, timeout=timeout)


async def service_status(nc: Client, service: str) -> dict:
    return json.loads((await nc.request(status_subject(service), b"", timeout=2)).data)


async def until_status(nc: Client, service: str, key: str, value: object, timeout: float = 10.0) -> None:
    """Until `service`'s status shows `key` equal to `value`: polling a state query, bounded by a deadline."""
    deadline = time.monotonic() + timeout
    while (await service_status(nc, service)).get(key) != value:
        assert time.monotonic() < deadline, f"{service} did not show {key}={value!r} within {timeout}s"
        await asyncio.sleep(0.02)


async def until_trading(nc: Client, service: str, enabled: bool, timeout: float = 10.0) -> None:
    await until_status(nc, service, "trading_enabled", enabled, timeout)
