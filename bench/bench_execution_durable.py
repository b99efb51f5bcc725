"""What execution's durable intents cost, and how its start-up grows with the order log.

    python bench/bench_execution_durable.py [--approvals 300] [--history 0,30000,150000] [--runs 3]

Execution runs as a real process (`bosun run execution`) on a private nats-server, for one
account either live (against the exchange simulator, in this process; its intents recorded in
PostgreSQL, an embedded server) or shadow (no store):
1. approval -> SubmitOrder: TargetApproved published one at a time (long 0.001, 0.002, ...: one
   buy each) and the SubmitOrder it causes seen on the order log; p50/p99 live (the intent
   committed before the SubmitOrder is published and the approval acked) and shadow, the two
   processes taking turns every 50 approvals in the same run;
2. start-up: the ORDERS stream holding a history of N order events (submit, accepted, filled per
   order), the time from launching execution to its PING answered; best of --runs."""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import aiohttp
import nats

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bosun.apps import control  # noqa: E402
from bosun.runtime.embedded import EmbeddedNats, EmbeddedPostgres  # noqa: E402
from bosun.runtime.provision import provision  # noqa: E402
from proto import codec  # noqa: E402
from proto import events as ev  # noqa: E402
from proto import subjects as sj  # noqa: E402
from tests.builders import publish, until_trading  # noqa: E402
from tests.datafiles import BTC_TRADES, data_file  # noqa: E402
from tests.processes import ServiceProcess, server_env  # noqa: E402
from tests.simhelp import API_KEY, API_SECRET, sim_config  # noqa: E402
from bosun.apps.exchange_sim.auth import Credentials  # noqa: E402
from bosun.apps.exchange_sim.server import serving  # noqa: E402

CONFIG = """
mode = "{kind}"
[[clients]]
id = "alice"
[clients.venues.binance]
kind = "{kind}"
api_url = "{url}"
"""
ENV = {"BOSUN_BINANCE_API_KEY": API_KEY, "BOSUN_BINANCE_API_SECRET": API_SECRET}
TURN = 50  # approvals per process before the other takes its turn


def approval(n: int) -> ev.TargetApproved:
    t = ev.TargetPosition(id=f"bench.t{n}.{time.time_ns()}", ts_event=time.time_ns(), client="alice",
                          venue="binance", symbol="BTCUSDT", qty=Decimal("0.001") * (n + 1),
                          strategy="bench", price=Decimal(60000))
    return ev.TargetApproved(id=t.id, ts_event=t.ts_event, target=t)


async def latencies(nc, n: int, start: int) -> list[float]:
    arrived: asyncio.Queue[float] = asyncio.Queue()

    async def seen(_msg) -> None:
        arrived.put_nowait(time.perf_counter())

    sub = await nc.subscribe("order.submit.alice.>", cb=seen)
    out = []
    try:
        for i in range(start, start + n):
            t0 = time.perf_counter()
            await publish(nc, approval(i))
            out.append(await asyncio.wait_for(arrived.get(), 10) - t0)
    finally:
        await sub.unsubscribe()
    return out


async def history(nc, events: int) -> None:
    js = nc.jetstream()
    t0 = 1_700_000_000_000_000_000
    pending = []
    for i in range(events // 3):
        coid = f"h{i}"
        for e in (ev.SubmitOrder(id=coid, ts_event=t0 + i, client="alice", venue="binance", symbol="BTCUSDT",
                                 side="buy" if i % 2 == 0 else "sell", qty=Decimal("0.01"), order_type="market",
                                 target_id=f"ht{i}"),
                  ev.OrderAccepted(id=coid, ts_event=t0 + i, client_order_id=coid, venue_order_id=coid,
                                   client="alice", venue="binance", symbol="BTCUSDT"),
                  ev.OrderFilled(id=f"f{i}", ts_event=t0 + i, client_order_id=coid, client="alice", venue="binance",
                                 symbol="BTCUSDT", side="buy" if i % 2 == 0 else "sell", qty=Decimal("0.01"),
                                 price=Decimal(60000), fee=Decimal(0))):
            pending.append(await js.publish_async(sj.subject_for(e), codec.encode(e)))
        if len(pending) >= 3000:
            await asyncio.gather(*pending)
            pending = []
    await asyncio.gather(*pending)


def processes(tmp: Path, nats_url: str, database_url: str, sim_url: str) -> dict[str, ServiceProcess]:
    """Execution for a live account (with its store) and for a shadow one (without)."""
    found = {}
    for kind, env in (("live", {**server_env(nats_url, database_url), **ENV}), ("shadow", server_env(nats_url))):
        config = tmp / f"{kind}.toml"
        config.write_text(CONFIG.format(kind=kind, url=sim_url))
        found[kind] = ServiceProcess("execution", config, tmp, env)
    return found


async def run(args, tmp: Path, database_url: str, sim_url: str) -> None:
    with EmbeddedNats(tmp / "nats") as server:
        nc = await nats.connect(server.url)
        try:
            await provision(nc.jetstream())
            procs = processes(tmp, server.url, database_url, sim_url)
            results: dict[str, list[float]] = {"live, with the store": [], "shadow, without": []}
            await control.set_trading(nc, True)
            for turn in range(args.approvals // TURN):
                name, proc = (("live, with the store", procs["live"]), ("shadow, without", procs["shadow"]))[turn % 2]
                await proc.start(nc)
                await until_trading(nc, "execution", False)
                await control.set_trading(nc, True)
                await until_trading(nc, "execution", True)
                results[name] += await latencies(nc, TURN, turn * TURN)
                proc.stop()
            print(f"approval -> SubmitOrder on the order log, {args.approvals} approvals, the two taking turns "
                  f"every {TURN} (machine shared with other jobs):")
            for name, xs in results.items():
                if not xs:
                    continue
                xs.sort()
                p50, p99 = statistics.median(xs) * 1e3, xs[int(len(xs) * 0.99)] * 1e3
                print(f"  {name:20s} p50 {p50:.2f} ms  p99 {p99:.2f} ms  (n={len(xs)})")
        finally:
            await nc.close()

    print("execution start-up (launch -> PING), ORDERS holding N order events, best of", args.runs)
    for n in args.history:
        with EmbeddedNats(tmp / f"nats{n}") as server:
            nc = await nats.connect(server.url)
            try:
                await provision(nc.jetstream())
                await history(nc, n)
                times: dict[str, list[float]] = {"live, with the store": [], "shadow, without": []}
                procs = processes(tmp, server.url, database_url, sim_url)
                for _ in range(args.runs):
                    for name, proc in zip(times, (procs["live"], procs["shadow"])):
                        t0 = time.monotonic()
                        await proc.start(nc, timeout=600)
                        times[name].append(time.monotonic() - t0)
                        proc.stop()
                print(f"  N={n:>7,}: " + "; ".join(f"{name} best {min(xs):.2f} s, median {statistics.median(xs):.2f} s"
                                                   for name, xs in times.items()))
            finally:
                await nc.close()
    print(f"reproduce: python bench/bench_execution_durable.py --approvals {args.approvals} "
          f"--history {','.join(map(str, args.history))} --runs {args.runs}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--approvals", type=int, default=300)
    parser.add_argument("--history", type=lambda s: [int(x) for x in s.split(",")], default=[0, 30_000, 150_000])
    parser.add_argument("--runs", type=int, default=3)
    with_servers(parser.parse_args(), run)


def with_servers(args, bench) -> None:
    """`await bench(args, tmp, database_url, simulator_url)` beside an embedded PostgreSQL and the
    exchange simulator (BTCUSDT trades, a few replayed)."""
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o755)  # as root, embedded PostgreSQL must reach its state dir
        with EmbeddedPostgres(Path(tmp) / "pg") as pg:
            asyncio.run(with_simulator(args, Path(tmp), pg.url, bench))


async def with_simulator(args, tmp: Path, database_url: str, bench) -> None:
    exchange = sim_config(str(data_file(BTC_TRADES)), USDT="1000000")
    async with serving(exchange, Credentials(API_KEY, API_SECRET)) as sim:
        async with aiohttp.ClientSession() as http:
            await http.post(sim.url + "/sim/advance", json={"trades": 10})
        await bench(args, tmp, database_url, sim.url)


if __name__ == "__main__":
    main()
