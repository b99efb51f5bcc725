"""One JetStream hop through a service's binding, this tree's against another checkout's, in turn.

    git worktree add /tmp/base main     (or: git archive main | tar -x -C /tmp/base)
    python bench/bench_hop.py [--against /tmp/base] [--messages 3000] [--rate 1000] [--rounds 4]

A child process (the tree's code, on uvloop) runs a NatsBinding whose actor approves every
TargetPosition it reads (a durable input, one output each); this process publishes --messages
targets at --rate per second and stamps each target and each approval as they pass (core
subscriptions). Prints, per run, the hop's p50/p99 (the first tenth left out) and the child's CPU
time per message (/proc), which does not depend on how busy the machine is as the hop does."""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import nats
import uvloop

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bosun.runtime.embedded import EmbeddedNats  # noqa: E402
from proto import codec  # noqa: E402
from proto import events as ev  # noqa: E402
from proto import subjects as sj  # noqa: E402

CHILD = """
import asyncio, sys, uvloop, nats
from bosun.runtime.actor import Actor, event_input
from bosun.runtime.clock import LiveClock
from bosun.runtime.nats_binding import NatsBinding
from bosun.runtime.provision import provision
from proto import events as ev

class Approver(Actor):
    name = "hop"
    def inputs(self):
        return [event_input("target.proposed.>", ev.TargetPosition, self.on_target)]
    def on_target(self, t):
        self.out.publish(ev.TargetApproved(id=t.id, ts_event=t.ts_event, target=t))

async def main():
    nc = await nats.connect(sys.argv[1])
    await provision(nc.jetstream())
    binding = NatsBinding(nc, "hop")
    ready = asyncio.Event()
    running = asyncio.create_task(binding.run(Approver(LiveClock(), binding.outbox), None, ready))
    await ready.wait()
    print("READY", flush=True)
    await running
uvloop.run(main())
"""


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def one_run(tree: Path, n: int, rate: float) -> tuple[float, float, float]:
    """(hop p50 ms, hop p99 ms, the child's CPU µs per message)"""
    with tempfile.TemporaryDirectory() as tmp, EmbeddedNats(Path(tmp) / "nats") as server:
        child = subprocess.Popen([sys.executable, "-c", CHILD, server.url], cwd=tree, stdout=subprocess.PIPE,
                                 env={**os.environ, "PYTHONPATH": str(tree)}, text=True)
        try:
            assert child.stdout.readline().strip() == "READY"
            nc = await nats.connect(server.url)
            sent: dict[str, int] = {}
            approved: dict[str, int] = {}
            all_in = asyncio.Event()

            async def on_target(msg) -> None:
                sent[codec.decode(msg.data, ev.TargetPosition).id] = time.perf_counter_ns()

            async def on_approved(msg) -> None:
                approved[codec.decode(msg.data, ev.TargetApproved).id] = time.perf_counter_ns()
                if len(approved) >= n:
                    all_in.set()

            await nc.subscribe("target.proposed.>", cb=on_target)
            await nc.subscribe("target.approved.>", cb=on_approved)
            await nc.flush()
            js = nc.jetstream()
            cpu0, t0 = cpu_seconds(child.pid), time.perf_counter()
            for i in range(n):
                t = ev.TargetPosition(id=f"t{i}", ts_event=i, client="a", venue="binance", symbol="BTCUSDT",
                                      qty=Decimal("1"), strategy="s", price=Decimal("100"))
                await js.publish_async(sj.subject_for(t), codec.encode(t), headers={"Nats-Msg-Id": ev.msg_id(t)})
                if (pause := t0 + (i + 1) / rate - time.perf_counter()) > 0:
                    await asyncio.sleep(pause)
            await asyncio.wait_for(all_in.wait(), 60)
            cpu = cpu_seconds(child.pid) - cpu0
            await nc.close()
        finally:
            child.terminate()
            child.wait()
    hops = [(approved[k] - sent[k]) / 1e6 for k in (f"t{i}" for i in range(n // 10, n)) if k in sent]
    q = statistics.quantiles(hops, n=100)
    return q[49], q[98], 1e6 * cpu / n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--against", type=Path, help="another checkout, run in turn with this one")
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    trees = {"this tree": ROOT, **({f"{args.against}": args.against.resolve()} if args.against else {})}
    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in trees}
    for _ in range(args.rounds):
        for name, tree in trees.items():
            load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
            p50, p99, cpu = uvloop.run(one_run(tree, args.messages, args.rate))
            results[name].append((p50, p99, cpu))
            print(f"  {name:<20} load {load}: hop p50 {p50:.2f} ms, p99 {p99:.2f} ms; CPU {cpu:.0f} µs a message",
                  flush=True)
    for name, runs in results.items():
        print(f"{name}: median of {len(runs)} runs: hop p50 {statistics.median(r[0] for r in runs):.2f} ms, p99 "
              f"{statistics.median(r[1] for r in runs):.2f} ms; CPU {statistics.median(r[2] for r in runs):.0f} µs a message")
    print(f"reproduce: python bench/bench_hop.py {f'--against {args.against} ' if args.against else ''}"
          f"--messages {args.messages} --rate {args.rate:g} --rounds {args.rounds}")


if __name__ == "__main__":
    main()
