"""Fills per second the portfolio service books with ack-after-commit, and the lag from
OrderFilled to PositionChanged at a steady rate.

    python bench/bench_portfolio.py [--fills 20000] [--rate 1000] [--paced 5000]

An embedded nats-server and PostgreSQL in a temp dir, `bosun run portfolio` in a process of its
own (one client, one market). Portfolio commits a round's fills, positions and round trips in one
transaction, then publishes their PositionChanged (acks awaited), then acks the fills: a
PositionChanged stored in JetStream is a fill committed in PostgreSQL.

- Throughput: --fills OrderFilled published at once (async publishes, every ack awaited), timed
  from the first publish until the last PositionChanged is stored; the fills table is counted too.
- Lag: --paced more fills at --rate per second; for each, from just before its publish to its
  PositionChanged reaching a subscriber; p50, p99 and max.
- CPU per fill in the throughput part, of portfolio, of PostgreSQL (every process of the embedded
  server) and of nats-server (from /proc): what the booking costs, however loaded the machine is.

Fills alternate buy and sell of 0.01 BTC, so every second fill closes a round trip (stored too)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import asyncpg
import nats

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.bench_tick_to_order import cpu_seconds  # noqa: E402
from bench.latency import pct  # noqa: E402
from bosun.runtime.embedded import EmbeddedNats, EmbeddedPostgres  # noqa: E402
from proto import codec  # noqa: E402
from proto import events as ev  # noqa: E402
from proto import subjects as sj  # noqa: E402
from tests.natshelp import stored_count  # noqa: E402
from tests.processes import ServiceProcess, descendants, server_env  # noqa: E402

CONFIG = """
[[strategies]]
name = "sma_btc"
symbol = "BTCUSDT"

[[clients]]
id = "alice"
strategies = ["sma_btc"]
"""
POLL_S = 0.005  # polling the stored count with a deadline: a bench's finish line, not synchronisation
STALL_S = 10.0  # no PositionChanged stored for this long: portfolio is stuck or refusing the fills


def fill(n: int) -> ev.OrderFilled:
    return ev.OrderFilled(id=f"bench-{n}", ts_event=1_700_000_000_000_000_000 + n * 1_000_000,
                          client_order_id=f"bench-order-{n}", client="alice", venue="binance", symbol="BTCUSDT",
                          side="buy" if n % 2 == 0 else "sell", qty=Decimal("0.01"),
                          price=Decimal(60000 + n % 100), fee=Decimal("0.06"), reason="signal")


async def publish(js, f: ev.OrderFilled) -> None:
    await js.publish_async(sj.subject_for(f), codec.encode(f), headers={"Nats-Msg-Id": ev.msg_id(f)})


async def until_stored(js, n: int) -> float:
    """monotonic time once `n` PositionChanged are stored in JetStream."""
    last, moved = -1, time.monotonic()
    while (count := await stored_count(js, "POSITIONS", sj.POSITIONS)) < n:
        if count != last:
            last, moved = count, time.monotonic()
        elif time.monotonic() - moved > STALL_S:
            raise TimeoutError(f"{count} of {n} PositionChanged stored, none for {STALL_S}s (see portfolio.log)")
        await asyncio.sleep(POLL_S)
    return time.monotonic()


def cpu(pids: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds so far of each group of processes (one gone meanwhile counts 0)."""
    def of(pid: int) -> float:
        try:
            return cpu_seconds(pid)
        except OSError:
            return 0.0
    return {name: sum(of(p) for p in group) for name, group in pids.items()}


async def throughput(js, db, first: int, n: int, pids: dict[str, list[int]]) -> tuple[float, int, dict[str, float]]:
    cpu0 = cpu(pids)
    started = time.monotonic()
    for i in range(first, first + n):
        await publish(js, fill(i))
    await js.publish_async_completed()
    done = await until_stored(js, first + n)
    spent = {name: seconds - cpu0[name] for name, seconds in cpu(pids).items()}
    return n / (done - started), await db.fetchval("SELECT count(*) FROM fills"), spent


async def lag(nc, js, first: int, n: int, rate: float) -> list[float]:
    sent: dict[str, float] = {}
    lags: list[float] = []
    all_in = asyncio.Event()

    async def changed(msg) -> None:
        change = codec.decode(msg.data, ev.PositionChanged)
        if change.id in sent:
            lags.append(time.monotonic() - sent[change.id])
            if len(lags) == n:
                all_in.set()

    sub = await nc.subscribe(sj.POSITIONS, cb=changed)
    await nc.flush()
    started = time.monotonic()
    for k, i in enumerate(range(first, first + n)):
        due = started + k / rate
        if (ahead := due - time.monotonic()) > 0:
            await asyncio.sleep(ahead)  # pacing the load, not waiting on a result
        f = fill(i)
        sent[f.id] = time.monotonic()
        await publish(js, f)
    await js.publish_async_completed()
    await asyncio.wait_for(all_in.wait(), timeout=120)
    await sub.unsubscribe()
    return lags


async def bench(tmp: Path, args: argparse.Namespace) -> None:
    with EmbeddedNats(tmp / "nats") as nats_server, EmbeddedPostgres(tmp / "pg") as pg:
        config = tmp / "bosun.toml"
        config.write_text(CONFIG)
        state = tmp / "state"
        state.mkdir()
        nc = await nats.connect(nats_server.url)
        portfolio = ServiceProcess("portfolio", config, state, server_env(nats_server.url, pg.url))
        db = None
        try:
            await portfolio.start(nc)
            js = nc.jetstream(publish_async_max_pending=4000)
            db = await asyncpg.connect(pg.url)
            pids = {"portfolio": [portfolio.proc.pid], "postgres": [pg.pid, *descendants(pg.pid)],
                    "nats-server": [nats_server.pid]}
            rate, stored, spent = await throughput(js, db, 0, args.fills, pids)
            assert stored == args.fills, f"{stored} fills in PostgreSQL, {args.fills} published"
            lags = await lag(nc, js, args.fills, args.paced, args.rate)
        finally:
            if db is not None:
                await db.close()
            await nc.close()
            portfolio.stop()
    ms = [x * 1000 for x in lags]
    print("portfolio, ack after commit (embedded NATS + PostgreSQL, `bosun run portfolio`, one market)")
    print(f"  throughput: {args.fills:,} fills published at once -> {rate:,.0f} fills/s booked "
          f"(first publish to last PositionChanged stored)")
    print("  CPU per fill booked: " + ", ".join(f"{name} {seconds / args.fills * 1e6:.0f} us"
                                                 for name, seconds in spent.items()))
    print(f"  lag at {args.rate:,.0f} fills/s over {args.paced:,} fills: p50 {pct(ms, 50):.1f} ms, "
          f"p99 {pct(ms, 99):.1f} ms, max {max(ms):.1f} ms")
    print(f"  load average {os.getloadavg()[0]:.2f}")
    print(f"reproduce: python bench/bench_portfolio.py --fills {args.fills} --rate {args.rate:g} --paced {args.paced}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fills", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--paced", type=int, default=5_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o755)  # as root, embedded PostgreSQL must reach its state dir
        asyncio.run(bench(Path(tmp), args))


if __name__ == "__main__":
    main()
