"""The whole platform under `bosun up --replay`, for the chaos tests: where each process is, how
to reach it, and the checks every fault ends with (`assert_sound`).

The checks, whatever the fault was:
- every order id is unique on the venue: each SubmitOrder id once in ORDERS, each order
  accepted at most once, each venue order id given once;
- every fill is booked exactly once: the fills in PostgreSQL are the OrderFilled events in
  JetStream, no fill id twice in either;
- positions equal the signed sum of the fills, in PostgreSQL and as risk, execution and
  portfolio report them;
- no service is down: every child of `bosun up` lives and every service answers PING."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import asyncpg
import msgspec
import nats
from nats.aio.client import Client
from nats.js import api

from bosun.apps import control
from bosun.runtime.embedded import EmbeddedNats, EmbeddedPostgres
from bosun.runtime.pidfiles import command_of
from bosun.runtime.urls import urls_from_env_or_state
from proto import codec
from proto import events as ev
from proto import subjects as sj
from tests.builders import ALICE_SMA, service_status
from tests.datafiles import BTC_1M, data_file, write_slice
from tests.processes import SERVICES, Up, bosun_argv

# 10 one-minute bars a second: a fill every second or two with sma 5/20, and far more bars
# than the suite lasts, so that the replay never runs out under it.
SPEED = 600
BARS = 40_000
SETTLE_TIMEOUT_S = 30.0
RECOVERY_TIMEOUT_S = 60.0
POLL_S = 0.05  # polling a status or a table with a deadline, never a sleep as synchronisation


def signed(side: str, qty: Decimal) -> Decimal:
    return qty if side == "buy" else -qty


@dataclass
class Figures:
    """What each fault did, for the test output and bench/RESULTS.md."""

    rows: list[tuple[str, int, bool, float]] = field(default_factory=list)  # fault, injected, survived, seconds

    def record(self, fault: str, injected: int, survived: bool, recovery_s: float) -> None:
        self.rows.append((fault, injected, survived, recovery_s))
        print(f"\nchaos: {fault}: {injected} injected, {'survived' if survived else 'NOT survived'}, "
              f"recovered in {recovery_s:.2f} s")

    def table(self) -> str:
        lines = ["| fault | injected | survived | recovery (s) |", "|---|---:|---|---:|"]
        lines += [f"| {f} | {n} | {'yes' if ok else 'no'} | {s:.2f} |" for f, n, ok, s in self.rows]
        return "\n".join(lines)


class Platform:
    """`bosun up --replay` on a slice of real BTCUSDT minutes, alice trading sma 5/20, in `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.state_dir = root / "state"
        self.config = root / "bosun.toml"
        self.config.write_text(ALICE_SMA)
        self.replay = write_slice(data_file(BTC_1M), root / "BTCUSDT_1m.csv", BARS)
        self.up: Up | None = None
        self.figures = Figures()
        # Servers a test restarted itself (`bosun up` starts its servers once, it does not supervise them).
        self.adopted: dict[str, EmbeddedNats | EmbeddedPostgres] = {}

    def start(self) -> dict[str, int]:
        self.up = Up(self.state_dir, "--config", str(self.config), "--replay", str(self.replay),
                     "--speed", str(SPEED))
        return self.up.wait_ready()

    def pids(self) -> dict[str, int]:
        """The pid of each service and server by its role (the servers a test restarted included)."""
        assert self.up is not None
        adopted = {name: server.pid for name, server in self.adopted.items() if server.pid and command_of(server.pid)}
        return self.up.children() | adopted

    def stop_adopted(self) -> None:
        for server in self.adopted.values():
            server.stop()
        self.adopted.clear()

    def urls(self) -> tuple[str, str]:
        nats_url, database_url = urls_from_env_or_state(self.state_dir)
        assert nats_url and database_url, f"no URLs recorded in {self.state_dir}"
        return nats_url, database_url

    async def connect(self) -> Client:
        return await nats.connect(self.urls()[0], max_reconnect_attempts=-1, reconnect_time_wait=0.2)

    def cli(self, *args: str) -> str:
        """`bosun <args>` against this platform (through the URLs in its state dir)."""
        done = subprocess.run(bosun_argv(*args, "--config", str(self.config), "--state-dir", str(self.state_dir)),
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"bosun {' '.join(args)} failed ({done.returncode}):\n{done.stderr}"
        return done.stdout

    def status(self) -> dict:
        return json.loads(self.cli("status", "--json"))

    async def booked_fills(self) -> int:
        conn = await asyncpg.connect(self.urls()[1])
        try:
            return await conn.fetchval("SELECT count(*) FROM fills")
        finally:
            await conn.close()

    async def until_trading_again(self, booked_before: int, timeout_s: float = RECOVERY_TIMEOUT_S) -> None:
        """Until PostgreSQL has booked a fill past `booked_before`: the whole chain trades."""
        deadline = time.monotonic() + timeout_s
        while await self.booked_fills() <= booked_before:
            assert time.monotonic() < deadline, f"no new fill booked within {timeout_s}s:\n{self.up_tail()}"
            await asyncio.sleep(POLL_S)

    def up_tail(self) -> str:
        return "" if self.up is None else self.up.output()[-3000:]


async def stored(js, subject: str, stream: str = "ORDERS") -> list[bytes]:
    """Every message `stream` holds on `subject`, in order (an ordered consumer, read to the end)."""
    info = await js.stream_info(stream, subjects_filter=subject)
    total = sum((info.state.subjects or {}).values())
    if total == 0:
        return []
    sub = await js.subscribe(subject, stream=stream, ordered_consumer=True, deliver_policy=api.DeliverPolicy.ALL)
    try:
        out = []
        while len(out) < total:
            out.append((await sub.next_msg(timeout=10)).data)
        return out
    finally:
        await sub.unsubscribe()


def decodable(payloads: list[bytes], kind: type) -> list:
    """The payloads that decode as `kind` (what the chaos tests publish on purpose does not)."""
    out = []
    for data in payloads:
        try:
            out.append(codec.decode(data, kind))
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError):
            pass
    return out


def duplicates(values) -> dict:
    return {v: n for v, n in Counter(values).items() if n > 1}


async def assert_order_ids_unique(js) -> int:
    # Accepts first: the platform trades on while this reads, and every accept read has its submit
    # stored before it, so reading the submits second sees them all.
    accepts = decodable(await stored(js, "order.accepted.>"), ev.OrderAccepted)
    submits = decodable(await stored(js, "order.submit.>"), ev.SubmitOrder)
    assert duplicates(s.id for s in submits) == {}, "an order id submitted twice"
    assert duplicates(a.client_order_id for a in accepts) == {}, "an order accepted twice"
    assert duplicates(a.venue_order_id for a in accepts) == {}, "a venue order id given twice"
    unsubmitted = {a.client_order_id for a in accepts} - {s.id for s in submits}
    assert unsubmitted == set(), f"orders accepted but never submitted: {sorted(unsubmitted)[:5]}"
    return len(submits)


async def _journal_fills(js) -> list[ev.OrderFilled]:
    fills = decodable(await stored(js, sj.FILLS), ev.OrderFilled)
    assert duplicates((f.venue, f.id) for f in fills) == {}, "a fill published twice in JetStream"
    return fills


async def assert_fills_booked_once(js, database_url: str) -> dict[tuple[str, str, str], Decimal]:
    """Every fill in JetStream is in PostgreSQL once, and nothing else is; PostgreSQL's positions are the
    signed sums of its fills. Fills go on arriving: the journal is read before and after the table."""
    before = {(f.venue, f.id) for f in await _journal_fills(js)}
    conn = await asyncpg.connect(database_url)
    try:
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        while not before <= {(r["venue"], r["fill_id"]) for r in await conn.fetch("SELECT venue, fill_id FROM fills")}:
            assert time.monotonic() < deadline, f"portfolio has not booked every fill within {SETTLE_TIMEOUT_S}s"
            await asyncio.sleep(POLL_S)
        async with conn.transaction(isolation="repeatable_read", readonly=True):  # one snapshot of both tables
            rows = await conn.fetch("SELECT venue, fill_id, client, symbol, side, qty FROM fills")
            positions = {(r["client"], r["venue"], r["symbol"]): r["qty"]
                         for r in await conn.fetch("SELECT client, venue, symbol, qty FROM positions")}
    finally:
        await conn.close()
    after = {(f.venue, f.id) for f in await _journal_fills(js)}
    booked = [(r["venue"], r["fill_id"]) for r in rows]
    assert duplicates(booked) == {}, "a fill booked twice"
    assert set(booked) <= after, f"fills booked that JetStream never carried: {sorted(set(booked) - after)[:5]}"
    sums: dict[tuple[str, str, str], Decimal] = {}
    for r in rows:
        key = (r["client"], r["venue"], r["symbol"])
        sums[key] = sums.get(key, Decimal(0)) + signed(r["side"], r["qty"])
    assert {k: q for k, q in positions.items() if q} == {k: q for k, q in sums.items() if q}
    return sums


async def assert_services_agree_with_the_journal(nc: Client, js) -> None:
    """At some moment within the deadline, risk, execution and portfolio all report the signed sum of
    the fills in JetStream (fills go on arriving, so a moment where nothing moved is waited for)."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while True:
        fills = await _journal_fills(js)
        sums: dict[str, Decimal] = {}
        for f in fills:
            key = f"{f.client}.{f.venue}.{f.symbol}"
            sums[key] = sums.get(key, Decimal(0)) + signed(f.side, f.qty)
        expected = {k: q for k, q in sums.items() if q}
        risk, execution, portfolio = [await service_status(nc, s) for s in ("risk", "execution", "portfolio")]
        reported = [{k: Decimal(q) for k, q in status["positions"].items() if Decimal(q)} for status in (risk, execution)]
        reported.append({f"{r['client']}.{r['venue']}.{r['symbol']}": Decimal(r["qty"])
                         for r in portfolio["positions"] if Decimal(r["qty"])})
        if all(r == expected for r in reported):
            return
        assert time.monotonic() < deadline, f"positions {reported} (risk, execution, portfolio) != fills {expected}"
        await asyncio.sleep(POLL_S)


async def until_services_answer(nc: Client, timeout_s: float = RECOVERY_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        down = [s for s in SERVICES if not await control.ping(nc, s)]
        if not down:
            return
        assert time.monotonic() < deadline, f"{', '.join(down)} not answering after {timeout_s}s"
        await asyncio.sleep(POLL_S)


async def assert_trading_off_until_resumed(platform: Platform, nc: Client) -> None:
    """After a restart of risk or execution: trading is off, for both and in the kill switch,
    until a person runs `bosun resume`; then on again for both."""
    for service in ("risk", "execution"):
        assert (await service_status(nc, service))["trading_enabled"] is False, f"{service} trades after a restart"
    enabled = platform.status()["trading_enabled"]
    assert enabled is False or isinstance(enabled, str), enabled  # an unreadable kill switch is off too
    assert platform.cli("resume").strip() == "trading ON"
    deadline = time.monotonic() + RECOVERY_TIMEOUT_S
    while not all([(await service_status(nc, s))["trading_enabled"] for s in ("risk", "execution")]):
        assert time.monotonic() < deadline, "trading not back on after `bosun resume`"
        await asyncio.sleep(POLL_S)


async def assert_sound(platform: Platform) -> None:
    """The checks every chaos test ends with (see the module's docstring)."""
    assert platform.up is not None and platform.up.proc.poll() is None, f"bosun up exited:\n{platform.up_tail()}"
    assert set(platform.pids()) == {*SERVICES, "nats-server", "postgres"}, platform.pids()
    nc = await platform.connect()
    try:
        js = nc.jetstream()
        await until_services_answer(nc)
        await assert_order_ids_unique(js)
        await assert_fills_booked_once(js, platform.urls()[1])
        await assert_services_agree_with_the_journal(nc, js)
    finally:
        await nc.close()
