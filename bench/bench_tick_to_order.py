"""Tick to order: from ingest's publish of a bar until execution hands the order for it to the
venue (publishes its SubmitOrder), with ingest, signal, risk and execution each `bosun run` in a
process of its own on one nats-server, bars replayed from a real file at --rate per second;
beside it, on the same server in the same run, the floor: a bare four-process pass-through
over core NATS at the same rate (bench/latency.py). Both are measured by one observer that
sees the first publish and the last one.

    python bench/bench_tick_to_order.py [--bars 3500] [--rate 1000] [--runs 3] [--tracing off,sampler-off,otlp]

The strategy is sma 2/3 with a fixed 0.01 BTC, which orders on about 3 bars in 8; each order is
matched to its bar by the SubmitOrder's market_ns (the bar's event time). The first --warmup
bars are left out (connections and first calls). With several --tracing modes the runs
alternate between them (issue 13's cost of tracing):

- off: OTEL_TRACES_EXPORTER unset, no span is made;
- sampler-off: OTEL_TRACES_EXPORTER=otlp with OTEL_TRACES_SAMPLER=always_off;
- otlp: every span exported over OTLP/HTTP to a collector stand-in (bench/ops_sidecar.py).

In every mode each service's metrics are scraped every second (the sidecar). Each run also
prints each service's hop (p50) and its CPU time per bar over the replay (from /proc): the
first says where the time goes, the second what a service costs however busy the machine is.
`otlp` needs the otlp extra: pip install -e '.[otlp]'."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import msgspec
import nats

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.latency import Stamps, floor_ms, latencies_ms, pct, summary  # noqa: E402
from bosun.apps import config as config_mod  # noqa: E402
from bosun.apps.up import effective_config  # noqa: E402
from bosun.runtime.backlog import durable_backlog  # noqa: E402
from bosun.runtime.embedded import EmbeddedNats, free_port  # noqa: E402
from proto import codec  # noqa: E402
from proto import events as ev  # noqa: E402
from proto import subjects as sj  # noqa: E402
from tests.builders import until_trading  # noqa: E402
from tests.datafiles import BTC_1M, data_dir, write_slice  # noqa: E402
from tests.processes import ServiceProcess, server_env  # noqa: E402

PIPELINE = ("signal", "risk", "execution")  # started first; ingest last, when everything listens
CONFIG = """
[[strategies]]
name = "sma_btc"
symbol = "BTCUSDT"
params = {{ fast = 2, slow = 3 }}

[[clients]]
id = "alice"
strategies = ["sma_btc"]
sizing = {{ kind = "fixed", qty = "0.01" }}
[clients.venues.binance]
fee_bps = "10"
slippage_bps = "1"
{services}
"""
MODES = {
    "off": {},
    "sampler-off": {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_TRACES_SAMPLER": "always_off"},
    "otlp": {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_TRACES_SAMPLER": "always_on"},
}


def paper_config(tmp: Path, text: str, replay: Path, speed: float) -> Path:
    """The config `bosun up --replay FILE --speed N` would hand its children (no price age limit
    on replayed prices), as the JSON file they read."""
    (tmp / "bosun.toml").write_text(text)
    cfg = effective_config(argparse.Namespace(replay=[replay], speed=speed, dry_run=False),
                           config_mod.load(tmp / "bosun.toml"))
    path = tmp / "effective.json"
    path.write_bytes(msgspec.json.encode(cfg))
    return path


def _bar_key(data: bytes) -> int:
    return codec.decode(data, ev.Bar).ts_event


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far: what a service costs, however busy the
    shared machine is (its latency is not)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _target_key(data: bytes) -> int:
    return codec.decode(data, ev.TargetPosition).ts_event


def _approved_key(data: bytes) -> int:
    return codec.decode(data, ev.TargetApproved).target.ts_event


def _order_key(data: bytes) -> int | None:
    return codec.decode(data, ev.SubmitOrder).market_ns


async def one_run(tmp: Path, replay: Path, args: argparse.Namespace, mode: str) -> tuple[list[float], list[float],
                                                                                        dict[str, int], dict[str, float]]:
    """(tick to order in ms, the floor in ms, the sidecar's counts, each service's hop's p50 and
    CPU time per bar in ms) on a fresh server."""
    ports = {s: free_port() for s in ("ingest", *PIPELINE)}
    services = "".join(f"[services.{s}]\nmetrics_port = {p}\n" for s, p in ports.items())
    config = paper_config(tmp, CONFIG.format(services=services), replay, speed=60 * args.rate)  # 1m bars
    otlp_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")} | MODES[mode] | {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{otlp_port}", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}
    sidecar = None
    with EmbeddedNats(tmp / "nats") as server:
        nc = await nats.connect(server.url)
        procs = {s: ServiceProcess(s, config, tmp, server_env(server.url) | env) for s in ("ingest", *PIPELINE)}
        try:
            floor = await floor_ms(nc, server.url, args.rate, args.bars, args.warmup)
            for s in PIPELINE:
                await procs[s].start(nc)
            await nc.jetstream().publish(sj.TRADING_ENABLED, codec.encode_trading_enabled(True))
            for s in ("risk", "execution"):
                await until_trading(nc, s, True)
            stamps = [await Stamps(nc, subject).start() for subject in (sj.BARS, sj.TARGETS, sj.APPROVED, sj.SUBMIT)]
            sidecar = subprocess.Popen([sys.executable, str(Path(__file__).with_name("ops_sidecar.py")),
                                        str(otlp_port), *(f"http://127.0.0.1:{p}/metrics" for p in ports.values())],
                                       stdout=subprocess.PIPE, text=True)
            assert sidecar.stdout.readline().strip() == "READY"
            await procs["ingest"].start(nc)
            cpu0 = {s: cpu_seconds(p.proc.pid) for s, p in procs.items()}  # start-up (imports) left out
            await stamps[0].wait(args.bars)
            await _until_traded_through(nc.jetstream())
            for s in stamps:
                await s.stop()
            cpu = {s: cpu_seconds(p.proc.pid) - cpu0[s] for s, p in procs.items()}
        finally:
            for p in procs.values():
                p.stop()
            await nc.close()
            counts = {}
            if sidecar is not None:
                sidecar.terminate()
                counts = json.loads(sidecar.communicate(timeout=30)[0].strip().splitlines()[-1])
    ticks = latencies_ms(stamps[0], stamps[-1], _bar_key, _order_key, args.warmup)
    # where the time goes: each service's hop, p50 (for the orders' bars only)
    keys = [_bar_key, _target_key, _approved_key, _order_key]
    split = {name: pct(latencies_ms(a, b, ka, kb, args.warmup) or [0.0], 50)
             for name, a, b, ka, kb in zip(PIPELINE, stamps, stamps[1:], keys, keys[1:])}
    split |= {f"{s} cpu/bar": 1000 * c / args.bars for s, c in cpu.items()}
    return ticks, floor, counts, split


async def _until_traded_through(js, timeout: float = 120.0) -> None:
    """Every bar, target and approval handled and acked by signal, risk and execution (their
    inputs are durable, acked once the outputs are stored): every order is out. A bounded poll."""
    deadline = time.monotonic() + timeout
    while await durable_backlog(js):
        assert time.monotonic() < deadline, f"the platform did not trade the bars through in {timeout}s"
        await asyncio.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bars", type=int, default=3500)
    parser.add_argument("--rate", type=float, default=1000.0, help="bars per second")
    parser.add_argument("--runs", type=int, default=3, help="per tracing mode")
    parser.add_argument("--warmup", type=int, default=100, help="bars left out at the start")
    parser.add_argument("--tracing", default="off", help=f"comma-separated, of {', '.join(MODES)}")
    args = parser.parse_args()
    modes = args.tracing.split(",")
    for mode in modes:
        if mode not in MODES:
            raise SystemExit(f"--tracing {mode!r}: one of {', '.join(MODES)}")
    results: dict[str, list[tuple[list[float], list[float], dict[str, int]]]] = {m: [] for m in modes}
    with tempfile.TemporaryDirectory() as tmp:
        replay = write_slice(data_dir() / BTC_1M, Path(tmp) / "BTCUSDT_1m.csv", args.bars)
        for run in range(args.runs):
            for mode in modes:  # alternating, so a busier moment of the shared machine hits every mode
                run_dir = Path(tmp) / f"{mode}-{run}"
                run_dir.mkdir()
                ticks, floor, counts, split = asyncio.run(one_run(run_dir, replay, args, mode))
                results[mode].append((ticks, floor, counts))
                print(f"  run {run + 1} {mode:<11} tick to order {summary(ticks)}; floor {summary(floor)}; "
                      f"ratio p50 {pct(ticks, 50) / pct(floor, 50):.1f}x; hops p50 and CPU per bar "
                      f"{', '.join(f'{k} {v:.2f} ms' for k, v in split.items())}; sidecar {counts}", flush=True)
    print(f"tick to order: ingest -> signal -> risk -> execution, each `bosun run` in its own process, one "
          f"nats-server, {args.bars:,} real BTCUSDT 1m bars at {args.rate:,.0f}/s, sma 2/3, first {args.warmup} bars "
          f"left out; metrics scraped every second; {args.runs} runs per mode, alternating")
    base = None
    for mode in modes:
        runs = results[mode]
        p50 = statistics.median(pct(t, 50) for t, _, _ in runs)
        p99 = statistics.median(pct(t, 99) for t, _, _ in runs)
        f50 = statistics.median(pct(f, 50) for _, f, _ in runs)
        f99 = statistics.median(pct(f, 99) for _, f, _ in runs)
        orders = sum(len(t) for t, _, _ in runs) // len(runs)
        base = base or p50
        print(f"  tracing {mode:<11} median of runs: p50 {p50:.2f} ms, p99 {p99:.2f} ms over {orders:,} orders a run "
              f"(target p50 <= 1.5, p99 <= 4: {'met' if p50 <= 1.5 and p99 <= 4 else 'MISSED'}); "
              f"floor p50 {f50:.2f} ms, p99 {f99:.2f} ms; ratio p50 {p50 / f50:.1f}x "
              f"(target <= 3x: {'met' if p50 / f50 <= 3 else 'MISSED'})"
              + (f"; p50 {100 * (p50 / base - 1):+.0f}% against {modes[0]}" if mode != modes[0] else ""))
    print(f"reproduce: python bench/bench_tick_to_order.py --bars {args.bars} --rate {args.rate:g} --runs {args.runs} "
          f"--warmup {args.warmup} --tracing {args.tracing}")


if __name__ == "__main__":
    main()
