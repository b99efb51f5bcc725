"""Time from `bosun up --replay FILE` to the first shadow fill, embedded servers included.

    python bench/bench_up_first_fill.py [--bars 2000] [--speed 0] [--runs 3]

Each run starts `bosun up` in a fresh state dir (so embedded NATS and PostgreSQL are
created from nothing), waits for the first OrderFilled stored in JetStream, and with
--exit-when-done also times the whole replay being traded through."""

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

import nats
from nats.js import api

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.datafiles import BTC_1M, data_dir, write_slice  # noqa: E402


async def first_fill_s(state_dir: Path, started: float, timeout: float = 120.0) -> float:
    urls = state_dir / "urls.json"
    while not urls.exists():
        if time.monotonic() - started > timeout:
            raise TimeoutError("bosun up wrote no urls.json")
        await asyncio.sleep(0.01)
    nc = await nats.connect(json.loads(urls.read_text())["nats_url"])
    try:
        js = nc.jetstream()
        while True:
            try:
                sub = await js.subscribe("order.filled.>", ordered_consumer=True, deliver_policy=api.DeliverPolicy.ALL)
                break
            except Exception:  # the stream is not provisioned yet
                await asyncio.sleep(0.01)
        await sub.next_msg(timeout=timeout)
        return time.monotonic() - started
    finally:
        await nc.close()


def one_run(replay: Path, speed: float) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o755)  # as root, embedded PostgreSQL must reach its state dir
        state_dir = Path(tmp) / "state"
        argv = [sys.executable, "-m", "bosun.apps.cli", "up", "--state-dir", str(state_dir),
                "--replay", str(replay), "--speed", str(speed), "--exit-when-done"]
        env = {k: v for k, v in os.environ.items() if k not in ("BOSUN_NATS_URL", "BOSUN_DATABASE_URL")}
        started = time.monotonic()
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            first = asyncio.run(first_fill_s(state_dir, started))
            _, err = proc.communicate(timeout=600)
            if proc.returncode != 0:
                raise RuntimeError(f"bosun up failed: {err[-2000:]}")
            return first, time.monotonic() - started
        finally:
            if proc.poll() is None:
                proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bars", type=int, default=2000)
    parser.add_argument("--speed", type=float, default=0.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        replay = write_slice(data_dir() / BTC_1M, Path(tmp) / "BTCUSDT_1m.csv", args.bars)
        runs = [one_run(replay, args.speed) for _ in range(args.runs)]
    firsts, totals = [r[0] for r in runs], [r[1] for r in runs]
    print(f"bosun up --replay ({args.bars} real BTCUSDT 1m bars, speed {args.speed}), {args.runs} runs, "
          f"embedded NATS + PostgreSQL started from nothing each run")
    print(f"  to first fill:        median {statistics.median(firsts):.2f} s  (runs: "
          f"{', '.join(f'{x:.2f}' for x in firsts)})")
    print(f"  whole replay traded:  median {statistics.median(totals):.2f} s  "
          f"({args.bars / statistics.median(totals):.0f} bars/s end to end, start-up included)")
    print(f"reproduce: python bench/bench_up_first_fill.py --bars {args.bars} --speed {args.speed} --runs {args.runs}")


if __name__ == "__main__":
    main()
