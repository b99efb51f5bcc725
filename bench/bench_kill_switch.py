"""Kill switch: with --orders open shadow limit orders, from a raw publish of `false` to
`$KV.control.trading_enabled` (what `nats pub` does) until the shadow venue holds none of them,
over --flips flips; in the same run, after each flip, the floor: a KV put seen by a watcher in
another process.

    python bench/bench_kill_switch.py [--orders 1000] [--flips 20]

Execution runs as `bosun run execution` (its shadow venue in the same process) on a nats-server
of its own. Each flip: trading on, --orders limit buys far under the market put in the order log
as execution's own SubmitOrders would be, all accepted by the venue; then the flip. Timed, from
just before the publish, by an ordered JetStream consumer on `order.canceled_all.>` (so each
OrdersCanceled counted is stored in ORDERS; the venue answers a cancel-all with one per
MAX_CANCELED_IDS orders):

- first: the first OrdersCanceled stored;
- all: the last of them stored: the venue holds no open order and every cancel is durable.

After each flip the answers must name every order, once, and execution's status must show no
open order, or the run fails."""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import urllib.request
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.latency import Stamps, kv_floor_ms, pct  # noqa: E402
from bosun.runtime.embedded import free_port  # noqa: E402
from proto import codec  # noqa: E402
from proto import events as ev  # noqa: E402
from proto import subjects as sj  # noqa: E402
from tests.builders import ALICE_SMA, bar_around, publish, service_status, until_trading  # noqa: E402
from tests.processes import services_on_own_nats  # noqa: E402

ACCEPT_TIMEOUT_S = 60.0
CANCEL_TIMEOUT_S = 30.0
FLOOR_PER_FLIP = 10  # KV puts timed after each flip


def order(flip: int, n: int) -> ev.SubmitOrder:
    return ev.SubmitOrder(id=f"ks-{flip}-{n}", ts_event=time.time_ns(), client="alice", venue="binance",
                          symbol="BTCUSDT", side="buy", qty=Decimal("0.001"), order_type="limit",
                          limit_price=Decimal("1000"), target_id=f"ks-{flip}-{n}")


async def bench(tmp: Path, args: argparse.Namespace) -> tuple[list[float], list[float], list[float]]:
    firsts, alls, floor = [], [], []
    port = free_port()
    config = ALICE_SMA + f"[services.execution]\nmetrics_port = {port}\n"
    metrics_url = f"http://127.0.0.1:{port}/metrics"
    async with services_on_own_nats(tmp, config, ["execution"]) as (nc, _, url, _):
        js = nc.jetstream(publish_async_max_pending=4000)
        await publish(nc, bar_around(time.time_ns()))  # a price for the venue's notional check
        accepted = await Stamps(nc, "order.accepted.>", stored=True).start()
        canceled = await Stamps(nc, "order.canceled_all.>", stored=True).start()
        answers = -(-args.orders // ev.MAX_CANCELED_IDS)  # OrdersCanceled per flip
        for flip in range(args.flips):
            await js.publish(sj.TRADING_ENABLED, codec.encode_trading_enabled(True))
            await until_trading(nc, "execution", True)
            accepted.clear()
            for n in range(args.orders):
                o = order(flip, n)
                await js.publish_async(sj.subject_for(o), codec.encode(o), headers={"Nats-Msg-Id": ev.msg_id(o)})
            await js.publish_async_completed()
            await accepted.wait(args.orders, ACCEPT_TIMEOUT_S)
            await until_open_orders(nc, args.orders)
            await until_idle(nc, js, metrics_url)
            canceled.clear()
            t0 = time.perf_counter_ns()
            await nc.publish(sj.TRADING_ENABLED, b"false")  # raw, as `nats pub` does
            await canceled.wait(answers, CANCEL_TIMEOUT_S)
            firsts.append((canceled.seen[0][0] - t0) / 1e6)
            alls.append((canceled.seen[answers - 1][0] - t0) / 1e6)
            named = [coid for _, data in canceled.seen
                     for coid in codec.decode(data, ev.OrdersCanceled).client_order_ids]
            assert sorted(named) == sorted(f"ks-{flip}-{n}" for n in range(args.orders)), "not every order, once"
            await until_open_orders(nc, 0)
            # alternated with the flips, so both see the same load; a key of its own each time, since a
            # new watcher is first handed the key's current value
            floor += await kv_floor_ms(nc, url, FLOOR_PER_FLIP, key=f"bench_floor_{flip}")
            print(f"  flip {flip + 1}: first canceled {firsts[-1]:.1f} ms, all {args.orders} {alls[-1]:.1f} ms",
                  flush=True)
    return firsts, alls, floor


async def until_idle(nc, js, metrics_url: str, timeout: float = 60.0) -> None:
    """Execution has handled every message in ORDERS on its order-log input (one for the actor
    and the venue), so a flip is not timed behind a backlog of echoes: a bounded poll."""
    deadline = time.monotonic() + timeout
    while True:
        stored = (await js.stream_info("ORDERS")).state.messages
        with urllib.request.urlopen(metrics_url, timeout=2) as r:
            text = r.read().decode()
        handled = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                      if line.startswith("bosun_messages_in_total{") and 'input="order.>"' in line)
        if handled >= stored:
            return
        assert time.monotonic() < deadline, f"execution handled {handled:.0f} of {stored} order-log messages"
        await asyncio.sleep(0.01)


async def until_open_orders(nc, n: int, timeout: float = 10.0) -> None:
    """Execution's status shows `n` open orders: a bounded poll of a state query."""
    deadline = time.monotonic() + timeout
    while len((await service_status(nc, "execution"))["open_orders"]) != n:
        assert time.monotonic() < deadline, f"execution did not show {n} open orders within {timeout}s"
        await asyncio.sleep(0.01)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--flips", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        firsts, alls, floor = asyncio.run(bench(Path(tmp), args))
    print(f"kill switch: `bosun run execution` (shadow venue in process) on its own nats-server, {args.orders:,} open "
          f"shadow limit orders, {args.flips} flips of a raw `false` on {sj.TRADING_ENABLED}")
    print(f"  first OrdersCanceled stored: p50 {pct(firsts, 50):.1f} ms, p99 {pct(firsts, 99):.1f} ms")
    print(f"  all {args.orders:,} stored (venue empty, every cancel durable): p50 {pct(alls, 50):.1f} ms, "
          f"p99 {pct(alls, 99):.1f} ms (target p99 < 10 ms: "
          f"{'met' if pct(alls, 99) < 10 else 'MISSED'})")
    print(f"  floor, a KV put seen by a watcher in another process: p50 {pct(floor, 50):.2f} ms, "
          f"p99 {pct(floor, 99):.2f} ms; ratio p50 first {pct(firsts, 50) / pct(floor, 50):.1f}x, "
          f"all {pct(alls, 50) / pct(floor, 50):.1f}x")
    print(f"reproduce: python bench/bench_kill_switch.py --orders {args.orders} --flips {args.flips}")


if __name__ == "__main__":
    main()
