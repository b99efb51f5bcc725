"""Execution's start-up as the order log grows: a full replay of ORDERS (main, before snapshots)
against the newest snapshot plus the log after it (this branch).

    git worktree add --detach /tmp/before-snapshots 0686186   # the code before snapshots
    python bench/bench_execution_startup.py --main /tmp/before-snapshots [--history 10000,50000,150000]
                                            [--runs 3] [--kinds shadow,live]

For each N, a private nats-server whose ORDERS holds N order events (submit, accepted, filled per
order; client order ids, target ids and fill ids shaped as execution makes them), and `bosun run
execution` for one account, shadow (no store) or live (the exchange simulator, intents in an
embedded PostgreSQL). Times are launch -> PING answered (the process's interpreter and imports
included: compare with N = 0). Per N and kind, in the same run:
1. this branch's first start: no snapshot yet, so a full replay; it stores a snapshot once its
   replicas have read the log (waited for, then stopped);
2. then --runs rounds of main's code (PYTHONPATH=--main: replays the whole log) and this branch
   (reads the snapshot, replays the rest), alternating;
3. in this process, reading the newest snapshot from the object store and restoring the actors
   from it (what the branch's start adds before its binding starts), best of --runs.
With --take, only what taking a snapshot costs (the process's event loop waits meanwhile)."""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path


import nats

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.bench_execution_durable import CONFIG, ENV, with_servers  # noqa: E402
from bosun.apps import config as config_mod  # noqa: E402
from bosun.runtime import replicas, snapshots  # noqa: E402
from bosun.runtime.clock import LiveClock  # noqa: E402
from bosun.runtime.embedded import EmbeddedNats  # noqa: E402
from bosun.runtime.provision import provision  # noqa: E402
from proto import codec  # noqa: E402
from proto import events as ev  # noqa: E402
from proto import subjects as sj  # noqa: E402
from services.execution.actor import ExecutionActor  # noqa: E402
from services.execution.orders import client_order_id  # noqa: E402
from services.execution.venues.live import LiveAdapter  # noqa: E402
from services.execution.venues.shadow_adapter import ShadowAdapter  # noqa: E402
from tests.processes import ServiceProcess, server_env  # noqa: E402

SNAPSHOT_WAIT_S = 900.0


async def history(js, events: int) -> None:
    pending = []
    for e in history_events(events):
        pending.append(await js.publish_async(sj.subject_for(e), codec.encode(e)))
        if len(pending) >= 3000:
            await asyncio.gather(*pending)
            pending = []
    await asyncio.gather(*pending)


def history_events(events: int) -> Iterator[ev.Event]:
    """`events` order events, three per order, ids as execution and the venues make them."""
    t0 = 1_700_000_000_000_000_000
    for i in range(events // 3):
        target = f"alice.sma_btc.binance.BTCUSDT.{t0 + i * 60_000_000_000}"
        coid = client_order_id(target, 1)
        side = "buy" if i % 2 == 0 else "sell"
        where = {"client": "alice", "venue": "binance", "symbol": "BTCUSDT"}
        yield ev.SubmitOrder(id=coid, ts_event=t0 + i, side=side, qty=Decimal("0.01"), order_type="market",
                             target_id=target, **where)
        yield ev.OrderAccepted(id=coid, ts_event=t0 + i, client_order_id=coid, venue_order_id=f"shadow-{coid}",
                               **where)
        yield ev.OrderFilled(id=f"{coid}.1", ts_event=t0 + i, client_order_id=coid, side=side, qty=Decimal("0.01"),
                             price=Decimal("60000.12"), fee=Decimal("0.60000120"), **where)


def taking(args, tmp: Path) -> None:
    """What taking a snapshot costs the process (its event loop waits meanwhile): the replicas of the
    account fed N events in this process, their parts and envelope made, best of 5."""
    for kind in args.kinds:
        config = tmp / f"{kind}.toml"
        config.write_text(CONFIG.format(kind=kind, url="http://127.0.0.1:1"))
        cfg = config_mod.load(config).execution_config(guarded=True)
        for n in args.history:
            kept = replicas.Replicas("ORDERS", sj.ORDERS, lambda: [
                ExecutionActor(LiveClock(), replicas.REFUSING, cfg, durable=True),
                ShadowAdapter(LiveClock(), replicas.REFUSING, cfg), LiveAdapter(LiveClock(), replicas.REFUSING, cfg)])
            for seq, e in enumerate(history_events(n), 1):
                kept.feed(seq, codec.encode(e))
            took = []
            for _ in range(5):
                t0 = time.perf_counter()
                size = len(replicas.encode(kept.envelope()))
                took.append(time.perf_counter() - t0)
            print(f"  N={n:>7,} {kind:6s}: a snapshot taken in best {min(took) * 1e3:.0f} ms, worst "
                  f"{max(took) * 1e3:.0f} ms, {size / 1e6:.2f} MB | load {os.getloadavg()[0]:.1f}")
    print(f"reproduce: python bench/bench_execution_startup.py --take --history {','.join(map(str, args.history))}")


def restored_in_process(kind: str, config: Path, envelope: replicas.Envelope) -> None:
    """What the branch's start does with the snapshot before its binding starts, on its config."""
    cfg = config_mod.load(config).execution_config(guarded=True)
    made = [ExecutionActor(LiveClock(), replicas.REFUSING, cfg, durable=kind == "live"),
            ShadowAdapter(LiveClock(), replicas.REFUSING, cfg)]
    if kind == "live":
        made.append(LiveAdapter(LiveClock(), replicas.REFUSING, cfg))
    for actor in made:
        replicas.restore(actor, envelope)
        assert actor.inputs()[1 if isinstance(actor, ExecutionActor) else 0].after == envelope.seq


async def start_time(proc: ServiceProcess, nc) -> float:
    t0 = time.monotonic()
    await proc.start(nc, timeout=900)
    return time.monotonic() - t0


async def run(args, tmp: Path, database_url: str, sim_url: str) -> None:
    print(f"execution start-up (launch -> PING), ORDERS holding N order events; load average "
          f"{os.getloadavg()[0]:.1f} at the start")
    for n in args.history:
        for kind in args.kinds:
            with EmbeddedNats(tmp / f"nats-{kind}-{n}") as server:
                nc = await nats.connect(server.url)
                try:
                    await provision(nc.jetstream())
                    await history(nc.jetstream(), n)
                    config = tmp / f"{kind}.toml"
                    config.write_text(CONFIG.format(kind=kind, url=sim_url))
                    env = {**server_env(server.url, database_url if kind == "live" else None),
                           **(ENV if kind == "live" else {})}
                    branch = ServiceProcess("execution", config, tmp / f"state-{kind}-{n}", env)
                    main = ServiceProcess("execution", config, tmp / f"main-{kind}-{n}",
                                          {**env, "PYTHONPATH": args.main})
                    main._argv.insert(1, "-P")  # not the working directory (this branch) first: main's code
                    for state in (tmp / f"state-{kind}-{n}", tmp / f"main-{kind}-{n}"):
                        state.mkdir(exist_ok=True)
                    first = await start_time(branch, nc)
                    store = snapshots.SnapshotStore(nc.jetstream())
                    deadline = time.monotonic() + SNAPSHOT_WAIT_S
                    envelope = None
                    while n and (envelope is None or envelope.seq < n - 1_000):
                        if time.monotonic() > deadline:
                            raise SystemExit(f"N={n} {kind}: no snapshot within {SNAPSHOT_WAIT_S} s")
                        await asyncio.sleep(0.2)  # polling the store: the replicas write in the background
                        envelope = await snapshots.load(store, "ORDERS")
                    branch.stop()
                    times: dict[str, list[float]] = {"main": [], "branch": []}
                    for _ in range(args.runs):
                        for name, proc in (("main", main), ("branch", branch)):
                            times[name].append(await start_time(proc, nc))
                            proc.stop()
                    assert "snapshot" not in main.log_text(None), "main's code read a snapshot: not main's"
                    assert "restored from the snapshot" in branch.log_text(None), "the branch replayed it all"
                    reads = []
                    for _ in range(args.runs if n else 0):
                        t0 = time.perf_counter()
                        newest = await snapshots.load(store, "ORDERS")
                        restored_in_process(kind, config, newest)
                        reads.append(time.perf_counter() - t0)
                    size = len(replicas.encode(envelope)) if envelope is not None else 0
                    print(f"  N={n:>7,} {kind:6s}: main (full replay) best {min(times['main']):6.2f} s, median "
                          f"{statistics.median(times['main']):6.2f} s | branch from the snapshot best "
                          f"{min(times['branch']):5.2f} s, median {statistics.median(times['branch']):5.2f} s | "
                          f"branch's first start (no snapshot yet) {first:6.2f} s | snapshot at "
                          f"{0 if envelope is None else envelope.seq:,}, {size / 1e6:.2f} MB, read + restored in "
                          f"{min(reads) * 1e3 if reads else 0:.0f} ms | load {os.getloadavg()[0]:.1f}")
                finally:
                    await nc.close()
    print(f"reproduce: python bench/bench_execution_startup.py --history {','.join(map(str, args.history))} "
          f"--runs {args.runs} --main {args.main} --kinds {','.join(args.kinds)}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--history", type=lambda s: [int(x) for x in s.split(",")], default=[10_000, 50_000, 150_000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--main", help="a checkout of the code before snapshots (e.g. of 0686186); needed but with --take")
    parser.add_argument("--kinds", type=lambda s: s.split(","), default=["shadow", "live"])
    parser.add_argument("--take", action="store_true", help="only what taking a snapshot costs, in this process")
    args = parser.parse_args()
    if not args.take and not args.main:
        parser.error("--main: a checkout of the code before snapshots to compare with (e.g. a worktree of 0686186)")
    if args.take:
        with tempfile.TemporaryDirectory() as tmp:
            taking(args, Path(tmp))
    else:
        with_servers(args, run)


if __name__ == "__main__":
    main()
