"""Risk, execution and alerts as real processes on a private nats-server: each circuit breaker
trips, cancels the orders in its scope, alerts through a real webhook, and stays tripped across a
restart of risk and execution until a person resumes the scope; a client's own switch, flipped
by a raw publish, halts that client and no other."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from decimal import Decimal
from pathlib import Path

import pytest

from proto import codec
from proto import events as ev
from proto import subjects as sj
from tests.builders import bar_around, fresh_price, publish, service_status, target, until_status, until_trading
from tests.integration.test_webhooks import ScriptedServer
from tests.natshelp import Collector
from tests.processes import bosun_argv, server_env, services_on_own_nats

WAIT_S = 15.0  # an upper bound for every wait, never a delay
CLIENTS = """
[[clients]]
id = "alice"
risk = {{ max_price_age_s = 600{alice} }}
[clients.venues.binance]
fee_bps = "10"

[[clients]]
id = "bob"
risk = {{ max_price_age_s = 600 }}
[clients.venues.binance]
fee_bps = "10"

[alerts]
webhooks = [{{ kind = "slack", url_env = "BOSUN_TEST_BREAKER_WEBHOOK" }}]
"""

BREAKERS = {  # breaker -> (alice's setting, the scope it halts)
    "errors": (", max_errors = 1, errors_window_s = 60", "client.alice"),
    "unknown_order": (", halt_on_unknown_order = true", "market.alice.binance.BTCUSDT"),
    "market_halted": (", halt_on_market_halt = true", "market.alice.binance.BTCUSDT"),
    "ack_latency": (", max_ack_latency_ms = 300", "market.alice.binance.BTCUSDT"),
    "stale_price": (", stale_price_ms = 3000", "market.alice.binance.BTCUSDT"),
}


def of(client: str, n: int, qty: str) -> ev.TargetPosition:
    t = target(n, qty)
    return ev.TargetPosition(**{**{f: getattr(t, f) for f in t.__struct_fields__}, "client": client,
                                "id": f"{client}.t{n}"})


async def resting_order(nc, client: str, n: int, qty: str = "0.1") -> None:
    """A market order of `client` (toward `qty`) resting on the venue until the next bar."""
    async with Collector(nc, f"order.accepted.{client}.>") as accepted:
        proposed = of(client, n, qty)
        await publish(nc, proposed)
        await publish(nc, bar_around(proposed.ts_event))
        await accepted.wait(1, timeout=WAIT_S)


async def verdict(nc, proposed: ev.TargetPosition) -> ev.Event:
    """Risk's answer to `proposed`: its approval or its breach."""
    answers = (f"target.approved.{proposed.client}.", f"risk.breach.{proposed.client}.")
    async with Collector(nc, ">") as seen:
        await publish(nc, proposed)
        while True:
            for msg in seen.messages:
                if msg.subject.startswith(answers):
                    event = codec.decode_any(msg.data)
                    if proposed.id in (getattr(event, "target_id", None), event.id):
                        return event
            await seen.wait(len(seen.messages) + 1, timeout=WAIT_S)


async def resume(nc, *services: str) -> None:
    await nc.publish(sj.TRADING_ENABLED, b"true")
    for service in services:
        await until_trading(nc, service, True)


@pytest.fixture
def webhook(monkeypatch):
    with ScriptedServer(204) as server:
        monkeypatch.setenv("BOSUN_TEST_BREAKER_WEBHOOK", server.url.replace("/api/webhooks/123/s3cr3t-token", "/hook"))
        yield server


def alert_texts(server: ScriptedServer) -> list[str]:
    return [body.get("text", "") for _, body in list(server.requests)]


async def until_alert(server: ScriptedServer, words: str) -> str:
    deadline = time.monotonic() + WAIT_S
    while True:
        found = [text for text in alert_texts(server) if words in text]
        if found:
            return found[0]
        assert time.monotonic() < deadline, f"no alert with {words!r}: {alert_texts(server)}"
        server.received.clear()
        await asyncio.to_thread(server.received.wait, 0.5)  # the server's own event: set on the next request


@pytest.mark.parametrize("breaker", list(BREAKERS))
async def test_a_breaker_trips_cancels_alerts_and_holds_across_restarts_until_resumed(tmp_path: Path, webhook,
                                                                                      breaker: str):
    setting, scope = BREAKERS[breaker]
    services = ("risk", "execution", "alerts")
    async with services_on_own_nats(tmp_path, CLIENTS.format(alice=setting), services) as (nc, processes, url, cfg):
        await resume(nc, "risk", "execution")
        await publish(nc, fresh_price())
        # The venue answers a cancel of a resting order; one it never answered at all (ack_latency)
        # gets the cancel command queued behind the order.
        cancels = "order.cancel.alice.>" if breaker == "ack_latency" else "order.canceled.alice.>"
        async with Collector(nc, sj.TRADING_STATE) as states, Collector(nc, cancels) as canceled:
            if breaker == "ack_latency":  # an order the venue never answers: no bar reaches its decision time
                await publish(nc, of("alice", 1, "0.1"))
            else:
                await resting_order(nc, "alice", 1)
            if breaker == "errors":  # the venue refuses two orders (as an adapter reports it)
                for n in (1, 2):
                    await publish(nc, ev.OrderRejected(id=f"x{n}", ts_event=time.time_ns(), client_order_id=f"x{n}",
                                                       client="alice", venue="binance", symbol="BTCUSDT",
                                                       reason="insufficient balance"))
            elif breaker == "unknown_order":  # the venue holds an order no intent explains
                await publish(nc, ev.VenueStateReported(
                    id="report.1", ts_event=time.time_ns(), client="alice", venue="binance", symbol="BTCUSDT",
                    open_orders=("stranger",), position=Decimal(0)))
            elif breaker == "market_halted":
                await publish(nc, ev.MarketHalted(id="halt.1", ts_event=time.time_ns(), venue="binance",
                                                  symbol="BTCUSDT", reason="maintenance"))
            # stale_price: nothing more; the price stops (no new one is published)
            deadline = time.monotonic() + WAIT_S
            while True:
                changes = [codec.decode(m.data, ev.TradingStateChanged) for m in states.messages]
                tripped = [c for c in changes if c.by == f"breaker {breaker}"]
                if tripped:
                    break
                assert time.monotonic() < deadline, f"{breaker} did not trip: {changes}"
                await states.wait(len(states.messages) + 1, timeout=WAIT_S)
            assert (tripped[0].scope, tripped[0].state, tripped[0].enabled) == (scope, "halted", False)
            [msg] = await canceled.wait(1, timeout=WAIT_S)
            assert codec.decode_any(msg.data).client == "alice"
        alert = await until_alert(webhook, f"Trading HALTED: {scope}")
        assert f"breaker {breaker}" in alert
        kv = await nc.jetstream().key_value(sj.CONTROL_BUCKET)
        assert (await kv.get(sj.state_key(scope))).value.startswith(f"halted breaker {breaker}".encode())

        for service in ("risk", "execution"):
            processes[service].stop()
        for service in ("risk", "execution"):
            await processes[service].start(nc)
        await resume(nc, "risk", "execution")  # the kill switch back on: the tripped scope stays halted
        await publish(nc, fresh_price())
        assert (await service_status(nc, "risk"))["scopes"] == {scope: "halted"}
        assert (await service_status(nc, "execution"))["scopes"] == {scope: "halted"}
        refused = await verdict(nc, of("alice", 2, "0.2"))
        assert isinstance(refused, ev.RiskLimitBreached) and refused.limit == "trading_state"
        assert isinstance(await verdict(nc, of("bob", 3, "0.2")), ev.TargetApproved)  # another client trades on

        done = subprocess.run(bosun_argv("resume", "--client", "alice", "--reason", "checked the venue",
                                         "--state-dir", str(tmp_path)), env=server_env(url), capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0 and done.stdout.strip() == "trading ON for client alice", done.stderr
        await until_status(nc, "risk", "scopes", {}, timeout=WAIT_S)
        await publish(nc, fresh_price())
        assert isinstance(await verdict(nc, of("alice", 4, "0.2")), ev.TargetApproved)


async def test_a_clients_own_switch_halts_that_client_and_no_other_and_halt_flatten_closes(tmp_path: Path,
                                                                                          webhook):
    async with services_on_own_nats(tmp_path, CLIENTS.format(alice=""), ("risk", "execution", "alerts")) as (
            nc, processes, url, cfg):
        await resume(nc, "risk", "execution")
        await publish(nc, fresh_price())
        # alice holds 0.1 BTC (a fill as a venue reports it)
        await publish(nc, ev.OrderFilled(id="fill.1", ts_event=time.time_ns(), client_order_id="earlier", client="alice",
                                         venue="binance", symbol="BTCUSDT", side="buy", qty=Decimal("0.1"),
                                         price=Decimal(60000), fee=Decimal(0)))
        await until_status(nc, "execution", "positions", {"alice.binance.BTCUSDT": "0.1"}, timeout=WAIT_S)
        await resting_order(nc, "alice", 2, "0.3")
        await resting_order(nc, "bob", 3)
        async with Collector(nc, "order.canceled.>") as canceled:
            await nc.publish("$KV.control.trading_enabled.alice", b"false")  # what `nats pub` does
            [msg] = await canceled.wait(1, timeout=WAIT_S)
            assert codec.decode(msg.data, ev.OrderCanceled).client == "alice"
        await until_status(nc, "execution", "scopes", {"switch.alice": "halted"}, timeout=WAIT_S)
        assert [o["client"] for o in (await service_status(nc, "execution"))["open_orders"].values()] == ["bob"]
        await until_alert(webhook, "Trading HALTED: client.alice")
        refused = await verdict(nc, of("alice", 4, "0.3"))
        assert isinstance(refused, ev.RiskLimitBreached) and refused.limit == "trading_state"
        assert isinstance(await verdict(nc, of("bob", 5, "0.3")), ev.TargetApproved)

        async with Collector(nc, "order.submit.alice.>") as submitted:  # a person flattens alice
            done = subprocess.run(bosun_argv("halt", "--client", "alice", "--flatten", "--state-dir", str(tmp_path)),
                                  env=server_env(url), capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, done.stderr
            assert done.stdout.splitlines()[0] == "trading OFF for client alice"
            assert "flattening alice.binance.BTCUSDT: 0.1 -> 0" in done.stdout
            [msg] = await submitted.wait(1, timeout=WAIT_S)
        order = codec.decode(msg.data, ev.SubmitOrder)
        assert (order.side, order.qty, order.reduce_only, order.reason) == ("sell", Decimal("0.1"), True, "kill_switch")

        audit = subprocess.run(bosun_argv("audit", "--client", "alice", "--kind", "state", "--state-dir",
                                          str(tmp_path)), env=server_env(url), capture_output=True, text=True,
                               timeout=60)
        lines = [json.loads(line) for line in audit.stdout.splitlines()]
        assert lines and all(line["kind"] == "TradingStateChanged" for line in lines), audit.stderr
        assert (lines[-1]["event"]["scope"], lines[-1]["event"]["state"]) == ("client.alice", "halted")


async def test_the_guard_refuses_an_approval_past_a_cap_and_alerts_that_risk_and_execution_disagree(tmp_path: Path,
                                                                                                    webhook):
    config = CLIENTS.format(alice=', max_order_notional = "1000"')
    async with services_on_own_nats(tmp_path, config, ("execution", "alerts")) as (nc, processes, url, cfg):
        await nc.publish(sj.TRADING_ENABLED, b"true")
        await until_trading(nc, "execution", True)
        forged = of("alice", 1, "1")  # 1 BTC at 60000: far past 1000; approved as a faulty risk would
        async with Collector(nc, "order.rejected.alice.>") as rejected, Collector(nc, "order.submit.>") as submitted:
            await publish(nc, ev.TargetApproved(id=forged.id, ts_event=forged.ts_event, target=forged))
            [msg] = await rejected.wait(1, timeout=WAIT_S)
        assert codec.decode(msg.data, ev.OrderRejected).reason.startswith("guard max_order_notional: ")
        assert not submitted.messages
        alert = await until_alert(webhook, "Risk and execution disagree: guard.max_order_notional")
        assert "risk approved target alice.t1" in alert
