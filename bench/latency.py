"""What the latency benchmarks share: percentiles, an observer that stamps the moment each
message of a subject reaches it, and the floor they are compared with, a bare chain of four
processes passing a message on over core NATS.

Run as a script it is one link of that chain (a process of its own, on uvloop):

    python bench/latency.py source URL OUT RATE COUNT   publish COUNT messages on OUT at RATE/s
    python bench/latency.py relay URL IN OUT            publish on OUT what arrives on IN
    python bench/latency.py kvwatch URL BUCKET KEY OUT  publish on OUT when (perf_counter_ns) each
                                                        update of KEY reached this watcher

The observer measures a path the same way for the platform and for the floor: it sees the
first publish and the last one, each one hop later, so the hop cancels out."""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import nats
from nats.aio.client import Client

PAYLOAD = 200  # bytes: about a Bar or a SubmitOrder in msgpack
CHAIN = 4  # processes: the platform's ingest, signal, risk and execution
STAMP_TIMEOUT_S = 60.0


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (q in 0..100, in steps of 0.1)."""
    return statistics.quantiles(values, n=1000)[int(q * 10) - 1] if len(values) > 1 else values[0]


def summary(ms: list[float]) -> str:
    return f"p50 {pct(ms, 50):.2f} ms, p99 {pct(ms, 99):.2f} ms, max {max(ms):.2f} ms (n={len(ms):,})"


class Stamps:
    """The arrival time (perf_counter_ns) and payload of every message on `subject`, from the
    moment `start()` returns (the server knows the interest then); with `stored`, of every
    message stored in its stream from then on (an ordered JetStream consumer)."""

    def __init__(self, nc: Client, subject: str, stored: bool = False) -> None:
        self.nc = nc
        self.subject = subject
        self.stored = stored
        self.seen: list[tuple[int, bytes]] = []
        self._sub = None
        self._wanted = 0
        self._enough = asyncio.Event()

    async def start(self) -> "Stamps":
        async def arrived(msg) -> None:
            self.seen.append((time.perf_counter_ns(), msg.data))  # stamped first, decoded later
            if self._wanted and len(self.seen) >= self._wanted:
                self._enough.set()

        if self.stored:
            self._sub = await self.nc.jetstream().subscribe(self.subject, cb=arrived, ordered_consumer=True,
                                                            deliver_policy="new", pending_msgs_limit=1_000_000)
        else:
            self._sub = await self.nc.subscribe(self.subject, cb=arrived, pending_msgs_limit=1_000_000)
        await self.nc.flush()
        return self

    def clear(self) -> None:
        self.seen.clear()
        self._wanted = 0

    async def wait(self, n: int, timeout: float = STAMP_TIMEOUT_S) -> None:
        """Until `n` messages have arrived; an AssertionError saying how many did otherwise."""
        self._wanted = n
        if len(self.seen) >= n:
            return
        self._enough.clear()
        try:
            await asyncio.wait_for(self._enough.wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"{len(self.seen)} of {n} messages on {self.subject} within {timeout}s") from None

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()


def latencies_ms(first: Stamps, last: Stamps, key_first: Callable[[bytes], object],
                 key_last: Callable[[bytes], object], skip: int = 0) -> list[float]:
    """For each message on `last` whose key matches one on `first` (the first such message
    only), the time between the two, in ms; the first `skip` messages of `first` are warm-up."""
    start = {key_first(data): t for t, data in first.seen[skip:]}
    out: list[float] = []
    done: set[object] = set()
    for t, data in last.seen:
        key = key_last(data)
        if key in start and key not in done:
            done.add(key)
            out.append((t - start[key]) / 1e6)
    return out


async def floor_ms(nc: Client, url: str, rate: float, count: int, skip: int) -> list[float]:
    """The bare chain on the server at `url`: a source and CHAIN - 1 relays in processes of their
    own, `count` messages at `rate`/s, each from the source's publish until the last relay's."""
    subjects = [f"bench.floor.{i}" for i in range(CHAIN)]
    first, last = await Stamps(nc, subjects[0]).start(), await Stamps(nc, subjects[-1]).start()
    relays = [_link("relay", url, a, b) for a, b in zip(subjects, subjects[1:])]
    try:
        for relay in relays:  # each relay says READY once subscribed: no message is lost to start-up
            assert relay.stdout.readline().strip() == b"READY", f"a relay did not start: {relay.args}"
        source = _link("source", url, subjects[0], str(rate), str(count))
        try:
            await last.wait(count)
        finally:
            source.wait(timeout=30)
    finally:
        for relay in relays:
            relay.terminate()
            relay.wait(timeout=10)
        await first.stop()
        await last.stop()
    return latencies_ms(first, last, bytes, bytes, skip)


async def kv_floor_ms(nc: Client, url: str, count: int, bucket: str = "control", key: str = "bench_floor",
                      every_s: float = 0.02) -> list[float]:
    """`count` KV puts, each from just before the put until a `kv.watch()` in another process
    saw it (one clock: CLOCK_MONOTONIC is the machine's)."""
    kv = await nc.jetstream().key_value(bucket)
    seen = Stamps(nc, "bench.kvseen")
    await seen.start()
    watcher = _link("kvwatch", url, bucket, key, seen.subject)
    try:
        assert watcher.stdout.readline().strip() == b"READY", "the KV watcher did not start"
        sent = []
        for n in range(count):
            sent.append(time.perf_counter_ns())
            await kv.put(key, str(n).encode())
            await seen.wait(n + 1)
            await asyncio.sleep(every_s)  # pacing the puts apart
    finally:
        watcher.terminate()
        watcher.wait(timeout=10)
        await seen.stop()
    return [(int(data) - t0) / 1e6 for t0, (_, data) in zip(sent, seen.seen)]


def _link(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, str(Path(__file__).resolve()), *args], stdout=subprocess.PIPE)


async def _source(url: str, out: str, rate: float, count: int) -> None:
    nc = await nats.connect(url)
    started = time.monotonic()
    for n in range(count):
        if (ahead := started + n / rate - time.monotonic()) > 0:
            await asyncio.sleep(ahead)  # pacing the load
        await nc.publish(out, n.to_bytes(8, "big") + bytes(PAYLOAD - 8))
    await nc.flush()
    await nc.close()


async def _relay(url: str, inp: str, out: str) -> None:
    nc = await nats.connect(url)

    async def passed(msg) -> None:
        await nc.publish(out, msg.data)

    await nc.subscribe(inp, cb=passed)
    await nc.flush()
    print("READY", flush=True)
    await asyncio.Event().wait()  # until terminated


async def _kvwatch(url: str, bucket: str, key: str, out: str) -> None:
    nc = await nats.connect(url)
    kv = await nc.jetstream().key_value(bucket)
    watcher = await kv.watch(key)
    async for entry in watcher:
        if entry is None:  # caught up: live updates from here
            print("READY", flush=True)
            continue
        await nc.publish(out, str(time.perf_counter_ns()).encode())


if __name__ == "__main__":
    import uvloop

    kind, *argv = sys.argv[1:]
    if kind == "source":
        uvloop.run(_source(argv[0], argv[1], float(argv[2]), int(argv[3])))
    elif kind == "kvwatch":
        uvloop.run(_kvwatch(*argv))
    else:
        uvloop.run(_relay(*argv))
