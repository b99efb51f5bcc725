"""What one message costs a process that relays it, on this machine, with plain nats-py and
nothing of bosun's: the floor under every service's CPU per bar and hop in
bench_tick_to_order.py (issue 9's tick-to-order target).

    python bench/bench_relay_cost.py [--messages 3000] [--rates 1000,200] [--rounds 2] [--hops 1,3]

Child processes on uvloop relay each message they are sent, in a chain of --hops (1: one relay
and back; 3: ingest -> signal -> risk -> execution's three hops); this process sends --messages
of 200 bytes at each rate, stamps each when it is sent and when the last relay's copy comes
back, and reads the relays' CPU time (/proc). Three kinds of relay:

- core: a core NATS subscription that publishes each message on (the bare chain's relay);
- js-ack: a durable JetStream push consumer with manual acks that publishes each message to a
  stream with `publish_async`, awaits the publish ack, then acks the input: what a bosun service
  must do so that no message is lost (an input acked only once its outputs are stored);
- js-no-ack: the same without awaiting the publish ack (a core publish into the stream): what
  the ack's round trip costs.

bosun's own binding on the same hop: bench/bench_hop.py."""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nats
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bosun.runtime.embedded import EmbeddedNats  # noqa: E402

RELAYS = ("core", "js-ack", "js-no-ack")
PAYLOAD = 200
CHILD = r"""
import asyncio, sys, uvloop, nats

async def main():
    url, kind, inp, out = sys.argv[1:5]
    nc = await nats.connect(url)
    js = nc.jetstream()
    if kind == "core":
        async def relay(msg):
            await nc.publish(out, msg.data)
        await nc.subscribe(inp, cb=relay)
    else:
        async def relay(msg):
            if kind == "js-ack":
                await (await js.publish_async(out, msg.data))
            else:
                await nc.publish(out, msg.data)
            await msg.ack()
        await js.subscribe(inp, durable=inp.replace(".", "_"), cb=relay, manual_ack=True, stream="HOPS")
    await nc.flush()  # the subscription is the server's before the first message is sent
    print("READY", flush=True)
    await asyncio.Event().wait()

uvloop.run(main())
"""


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def one_run(kind: str, hops: int, n: int, rate: float) -> tuple[float, float, float]:
    """(the relays' CPU µs per message each, the chain's p50 and p99 in ms)"""
    subjects = [f"hop.{i}" for i in range(hops + 1)]
    with tempfile.TemporaryDirectory() as tmp, EmbeddedNats(Path(tmp) / "nats") as server:
        nc = await nats.connect(server.url)
        await nc.jetstream().add_stream(name="HOPS", subjects=["hop.>"])
        children = [subprocess.Popen([sys.executable, "-c", CHILD, server.url, kind, a, b], stdout=subprocess.PIPE,
                                     text=True) for a, b in zip(subjects, subjects[1:])]
        try:
            for child in children:
                assert child.stdout.readline().strip() == "READY", f"a {kind} relay did not start"
            sent: list[int] = [0] * n
            trips: list[float] = []
            all_back = asyncio.Event()

            async def back(msg) -> None:
                trips.append((time.perf_counter_ns() - sent[int.from_bytes(msg.data[:8], "big")]) / 1e6)
                if len(trips) >= n:
                    all_back.set()

            await nc.subscribe(subjects[-1], cb=back)
            await nc.flush()
            cpu0, t0 = sum(cpu_seconds(c.pid) for c in children), time.perf_counter()
            for i in range(n):
                sent[i] = time.perf_counter_ns()
                await nc.publish(subjects[0], i.to_bytes(8, "big") + bytes(PAYLOAD - 8))
                if (pause := t0 + (i + 1) / rate - time.perf_counter()) > 0:
                    await asyncio.sleep(pause)
            try:
                await asyncio.wait_for(all_back.wait(), 60)
            except TimeoutError:
                raise SystemExit(f"{kind} x {hops} at {rate}/s: {len(trips)} of {n} came back") from None
            cpu = sum(cpu_seconds(c.pid) for c in children) - cpu0
            await nc.close()
        finally:
            for child in children:
                child.terminate()
                child.wait()
    kept = sorted(trips[n // 10:])
    return 1e6 * cpu / n / hops, kept[len(kept) // 2], kept[int(0.99 * (len(kept) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--rates", default="1000,200")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--hops", default="1,3")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    results: dict[tuple[int, float, str], list[tuple[float, float, float]]] = {
        (h, r, k): [] for h in (int(h) for h in args.hops.split(",")) for r in rates for k in RELAYS}
    for _ in range(args.rounds):  # the relays in turn, so that the machine's drift falls on all alike
        for (hops, rate, kind), runs in results.items():
            runs.append(uvloop.run(one_run(kind, hops, args.messages, rate)))
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(f"relay processes on uvloop, plain nats-py, {args.messages:,} messages of {PAYLOAD} bytes per run, "
          f"median of {args.rounds} runs, load {load}")
    for (hops, rate, kind), runs in results.items():
        print(f"  {hops} hop{'s' if hops > 1 else ' '} {kind:<10} at {rate:>5g}/s: CPU "
              f"{statistics.median(r[0] for r in runs):4.0f} µs a message a relay, p50 "
              f"{statistics.median(r[1] for r in runs):.2f} ms, p99 {statistics.median(r[2] for r in runs):.2f} ms")
    print(f"reproduce: python bench/bench_relay_cost.py --messages {args.messages} --rates {args.rates} "
          f"--rounds {args.rounds} --hops {args.hops}")


if __name__ == "__main__":
    main()
