"""Well-formed messages with absurd numbers, on a real nats-server against risk and execution as
real processes: each is dead-lettered with a reason naming the event, field and value, no state
takes it in (not even through the ORDERS replay after a restart), and trading goes on. Also
`bosun status` lists each client's limits, from risk."""

from __future__ import annotations

import json
import subprocess
import time
from decimal import Decimal
from pathlib import Path

import pytest

from proto import codec
from proto import events as ev
from proto import subjects as sj
from tests.builders import bar_around, publish, service_status, target, until_status, until_trading
from tests.natshelp import Collector
from tests.processes import bosun_argv, server_env, services_on_own_nats

CONFIG = """
[[clients]]
id = "alice"
risk = { max_position = "2", max_order_notional = "100000", price_band_pct = "5" }
[clients.venues.binance]
fee_bps = "10"
"""
SERVICES = ("risk", "execution")


def nan_fill() -> ev.OrderFilled:
    return ev.OrderFilled(id="hostile-nan", ts_event=time.time_ns(), client_order_id="alice.hostile", client="alice",
                          venue="binance", symbol="BTCUSDT", side="buy", qty=Decimal("NaN"), price=Decimal(60000),
                          fee=Decimal(0))


@pytest.fixture
async def platform(tmp_path: Path):
    async with services_on_own_nats(tmp_path, CONFIG, SERVICES) as (nc, processes, url, config):
        await nc.publish(sj.TRADING_ENABLED, codec.encode_trading_enabled(True))
        for service in SERVICES:
            await until_trading(nc, service, True)
        yield nc, processes, url, config


async def reasons(collector: Collector, n: int = 1) -> list[str]:
    return [codec.decode(m.data, ev.DeadLetter).reason for m in await collector.wait(n, timeout=10)]


async def test_a_nan_fill_and_a_1e12_target_are_dead_lettered_by_name_and_trading_goes_on(platform):
    nc, processes, _, _ = platform
    fill_subject = sj.subject_for(nan_fill())
    async with Collector(nc, sj.dead_letter("risk")) as risk_dlq, \
            Collector(nc, sj.dead_letter("execution")) as execution_dlq:
        await publish(nc, nan_fill())
        expected = (f"cannot decode the message on {fill_subject}: "
                    "OrderFilled.qty = NaN is not a finite number (quantity)")
        assert await reasons(risk_dlq) == [expected]
        assert expected in await reasons(execution_dlq)

    absurd = ev.TargetPosition(id="alice.absurd", ts_event=time.time_ns(), client="alice", venue="binance",
                               symbol="BTCUSDT", qty=Decimal("1e12"), strategy="test", price=Decimal(60000))
    async with Collector(nc, sj.dead_letter("risk")) as risk_dlq, \
            Collector(nc, sj.dead_letter("execution")) as execution_dlq:
        await publish(nc, absurd)
        await publish(nc, ev.TargetApproved(id="alice.absurd-approved", ts_event=time.time_ns(), target=absurd))
        notional = ("TargetPosition notional qty x price = 1E+12 x 60000 = 6.000000E+16 is above the sanity cap "
                    "of 1E+11 (quote currency)")
        assert await reasons(risk_dlq) == [f"cannot decode the message on {sj.subject_for(absurd)}: {notional}"]
        assert (await reasons(execution_dlq))[0].endswith(notional)

    # Trading goes on: a genuine target is approved, ordered and filled, and the positions are numbers.
    genuine = target(1, "0.5")
    async with Collector(nc, "order.filled.alice.>") as fills:
        await publish(nc, genuine)
        await publish(nc, bar_around(genuine.ts_event))
        await publish(nc, bar_around(genuine.ts_event + 60_000_000_000))  # the order fills at the next open
        await fills.wait(1, timeout=10)
    held = {"alice.binance.BTCUSDT": "0.50000"}  # the order's qty, on the venue's step size
    await until_status(nc, "risk", "positions", held)
    assert (await service_status(nc, "risk"))["breached"] == 0  # the hostile target never reached a verdict

    # Restarted, both replay the ORDERS log, NaN fill included: it is refused again, not booked.
    for service in SERVICES:
        processes[service].stop()
    for service in SERVICES:
        await processes[service].start(nc)
    assert (await service_status(nc, "risk"))["positions"] == held
    assert (await service_status(nc, "execution"))["positions"] == held


async def test_bosun_status_lists_each_clients_limits(platform):
    _, _, url, config = platform

    def bosun_status(*flags: str) -> str:
        return subprocess.run(bosun_argv("status", *flags, "--config", str(config), "--state-dir", str(config.parent)),
                              env=server_env(url), capture_output=True, text=True, timeout=60).stdout

    status = json.loads(bosun_status("--json"))
    assert status["risk"]["limits"]["alice"] == {
        "kill_switch": "only reductions while trading is disabled",
        "stale_target": "a target older than 300 s is refused",
        "stale_price": "no price, or one older than 300 s: refused",
        "max_position": "|qty| <= 2 per symbol",
        "max_order_notional": "|order qty| x price <= 100000 (quote currency)",
        "price_band": "target price within 5% of the newest price",
    }
    table = bosun_status()
    assert "limit        alice      price_band           target price within 5% of the newest price" in table
    assert "risk         approved 0  breached 0" in table
