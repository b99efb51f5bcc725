"""Risk and execution as real processes on a private nats-server: the kill switch, replayed
targets, and malformed input."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from pathlib import Path

import pytest

from proto import codec
from proto import events as ev
from proto import subjects as sj
from tests.builders import bar_around, publish, service_status, target, until_status, until_trading
from tests.natshelp import Collector, stored_count, stored_count_once
from tests.processes import ServiceProcess, services_on_own_nats

CONFIG = """
[[clients]]
id = "alice"
[clients.venues.binance]
fee_bps = "10"
"""


class Platform:
    def __init__(self, nc, js, processes: dict[str, ServiceProcess]) -> None:
        self.nc, self.js, self.processes = nc, js, processes

    async def restart(self, *services: str) -> None:
        for service in services:
            self.processes[service].stop()
        for service in services:
            await self.processes[service].start(self.nc)

    async def status(self, service: str) -> dict:
        return await service_status(self.nc, service)

    async def set_trading(self, enabled: bool) -> None:
        await self.nc.publish(sj.TRADING_ENABLED, codec.encode_trading_enabled(enabled))
        for service in ("risk", "execution"):
            await until_trading(self.nc, service, enabled)

    async def publish(self, event: ev.Event, dedup: bool = True) -> None:
        await publish(self.nc, event, dedup=dedup)


@pytest.fixture
async def platform(tmp_path: Path):
    async with services_on_own_nats(tmp_path, CONFIG, ("risk", "execution")) as (nc, processes, _, _):
        yield Platform(nc, nc.jetstream(), processes)


def resting_limit(n: int) -> ev.SubmitOrder:
    """A limit buy far under the market, put in the order log as execution's own would be."""
    return ev.SubmitOrder(id=f"bs-limit-{n}", ts_event=time.time_ns(), client="alice", venue="binance",
                          symbol="BTCUSDT", side="buy", qty=Decimal("0.001"), order_type="limit",
                          limit_price=Decimal("1000"), target_id=f"limit-{n}")


async def test_raw_publish_of_false_cancels_open_orders_and_survives_restarts(platform: Platform):
    await platform.set_trading(True)
    limits = [resting_limit(n) for n in range(50)]
    async with Collector(platform.nc, "order.accepted.alice.>") as accepted:
        proposed = target(1, "0.5")
        await platform.publish(proposed)
        await platform.publish(bar_around(proposed.ts_event))  # the venue's market reaches the decision
        for order in limits:
            await platform.publish(order)
        await accepted.wait(1 + len(limits), timeout=10)  # a market order resting until the next bar, and the limits
    working = {codec.decode(m.data, ev.OrderAccepted).client_order_id for m in accepted.messages}
    deadline = time.monotonic() + 10
    while set((await platform.status("execution"))["open_orders"]) != working:  # a bounded poll of its book
        assert time.monotonic() < deadline, "execution's book did not show every accepted order within 10 s"
        await asyncio.sleep(0.02)

    async with Collector(platform.nc, "order.canceled_all.alice.>") as canceled, \
            Collector(platform.nc, sj.TRADING_STATE) as state:
        await platform.nc.publish("$KV.control.trading_enabled", b"false")  # what `nats pub` does
        [msg] = await canceled.wait(1, timeout=10)  # the venue's one answer to execution's one CancelAllOrders
        answer = codec.decode(msg.data, ev.OrdersCanceled)
        assert set(answer.client_order_ids) == working and answer.reason == "kill_switch"
        [msg] = await state.wait(1, timeout=10)
        assert codec.decode(msg.data, ev.TradingStateChanged).enabled is False
    await until_status(platform.nc, "execution", "open_orders", {})
    assert await stored_count(platform.js, "ORDERS", "order.canceled_all.>") == 1  # durable, once
    assert await stored_count(platform.js, "ORDERS", "order.canceled.>") == 0  # and no single beside it

    async with Collector(platform.nc, "risk.breach.alice.>") as breaches:
        await platform.publish(target(2, "1.0"))
        [msg] = await breaches.wait(1, timeout=10)
        assert codec.decode(msg.data, ev.RiskLimitBreached).limit == "kill_switch"

    await platform.restart("risk", "execution")
    assert (await platform.status("risk"))["trading_enabled"] is False
    assert (await platform.status("execution"))["trading_enabled"] is False
    # Replayed, the batch closed every order in the venue and the book alike: at start the venue
    # reports nothing held (a report and an "unexplained" cancel otherwise) and the book nothing to cancel.
    assert (await platform.status("execution"))["open_orders"] == {}
    for subject, n in (("order.venue_state.>", 0), ("order.cancel.>", 0), ("order.cancel_all.>", 1)):
        assert await stored_count(platform.js, "ORDERS", subject) == n, subject
    async with Collector(platform.nc, "risk.breach.alice.>") as breaches:
        await platform.publish(target(3, "1.0"))
        [msg] = await breaches.wait(1, timeout=10)
        assert codec.decode(msg.data, ev.RiskLimitBreached).limit == "kill_switch"
    assert await stored_count(platform.js, "ORDERS", "order.submit.>") == 1 + len(limits)  # none after the flip


async def test_the_same_target_twice_gives_one_order(platform: Platform):
    await platform.set_trading(True)
    approved = ev.TargetApproved(id="alice.t7", ts_event=time.time_ns(), target=target(7, "0.25"))
    async with Collector(platform.nc, "order.submit.alice.>") as submitted, \
            Collector(platform.nc, "target.approved.alice.>") as approvals:
        # No Nats-Msg-Id: JetStream stores both copies, so execution itself must see the replay.
        await platform.publish(approved, dedup=False)
        await platform.publish(approved, dedup=False)
        await platform.publish(target(8, "0.25"))  # the same position again: nothing to do
        await submitted.wait(1, timeout=10)
        await approvals.wait(3, timeout=10)
    async with Collector(platform.nc, "order.submit.alice.>") as submitted:
        await platform.publish(target(9, "0.5"))  # a change: one more order, proving execution kept going
        await submitted.wait(1, timeout=10)
    assert await stored_count_once(platform.js, "ORDERS", "order.submit.>", 2) == 2


@pytest.mark.parametrize("service, good, reaction", [
    ("risk", target(11, "1"), "risk.breach.alice.>"),  # trading is off: risk answers with a breach
    ("execution", ev.TargetApproved(id="alice.t12", ts_event=0, target=target(12, "1")), "order.rejected.alice.>"),
])
async def test_a_malformed_message_is_dead_lettered_and_the_service_keeps_going(platform: Platform, service, good,
                                                                                reaction):
    subject = sj.subject_for(good)
    async with Collector(platform.nc, sj.dead_letter(service)) as dlq:
        await platform.js.publish(subject, b"\x93not an event")
        [msg] = await dlq.wait(1, timeout=10)
    letter = codec.decode(msg.data, ev.DeadLetter)
    assert (letter.service, letter.subject, letter.payload) == (service, subject, b"\x93not an event")
    assert letter.reason
    async with Collector(platform.nc, reaction) as reactions:
        await platform.publish(good)
        await reactions.wait(1, timeout=10)
