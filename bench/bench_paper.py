"""Paper trading throughput: `bosun up --replay FILE --speed 0`, bars per second end to end.

    python bench/bench_paper.py [--bars 5000] [--runs 3]

Each run starts `bosun up` in a fresh state dir (sma 5/20, 0.01 BTC, as the paper-equals-
backtest test) and times the replay
itself, not the start-up of the embedded servers: from the first bar stored in the MARKET
stream to the moment every bar is stored and every durable consumer of every service has
acked everything (so the last bar's targets, orders, fills and positions are through). Then
it checks the paper fills against `bosun backtest` of the same file: equal, or the run fails."""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import nats

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bosun.runtime.backlog import durable_backlog  # noqa: E402
from proto import codec  # noqa: E402
from proto import events as ev  # noqa: E402
from tests.builders import ALICE_SMA  # noqa: E402
from tests.datafiles import BTC_1M, data_dir, write_slice  # noqa: E402
from tests.natshelp import stored_count, stream_messages  # noqa: E402

POLL_S = 0.005


async def replay_seconds(state_dir: Path, bars: int, timeout: float = 300.0) -> tuple[float, list[ev.OrderFilled]]:
    """From the first bar stored to everything traded through; and the fills."""
    deadline = time.monotonic() + timeout
    urls = state_dir / "urls.json"
    while not urls.exists():
        assert time.monotonic() < deadline, "bosun up wrote no urls.json"
        await asyncio.sleep(POLL_S)
    nc = await nats.connect(json.loads(urls.read_text())["nats_url"])
    try:
        js = nc.jetstream()
        first = None
        while True:
            assert time.monotonic() < deadline, "the replay did not trade through"
            try:
                stored = await stored_count(js, "MARKET", "md.bar.>")
            except Exception:  # the stream is not provisioned yet
                stored = 0
            if stored and first is None:
                first = time.monotonic()
            if stored == bars and not await durable_backlog(js):
                elapsed = time.monotonic() - first
                break
            await asyncio.sleep(POLL_S)
        n = await stored_count(js, "ORDERS", "order.filled.>")
        fills = [codec.decode(m.data, ev.OrderFilled) for m in await stream_messages(js, "order.filled.>", n)]
        return elapsed, fills
    finally:
        await nc.close()


def one_run(replay: Path, config: Path, bars: int) -> tuple[float, list[ev.OrderFilled]]:
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o755)  # as root, embedded PostgreSQL must reach its state dir
        state_dir = Path(tmp) / "state"
        argv = [sys.executable, "-m", "bosun.apps.cli", "up", "--config", str(config), "--state-dir", str(state_dir),
                "--replay", str(replay), "--speed", "0", "--exit-when-done"]
        env = {k: v for k, v in os.environ.items() if k not in ("BOSUN_NATS_URL", "BOSUN_DATABASE_URL")}
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            result = asyncio.run(replay_seconds(state_dir, bars))
            _, err = proc.communicate(timeout=120)
            if proc.returncode != 0:
                raise RuntimeError(f"bosun up failed: {err[-2000:]}")
            return result
        finally:
            if proc.poll() is None:
                proc.kill()


def backtest_fills(replay: Path, config: Path) -> list[tuple[str, str, Decimal, Decimal]]:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "bosun.apps.cli", "backtest", "--data", str(replay), "--config",
                        str(config), "--out", tmp], check=True, capture_output=True)
        with open(Path(tmp) / "fills.csv") as f:
            return [(r["side"], r["reason"], Decimal(r["qty"]), Decimal(r["price"])) for r in csv.DictReader(f)
                    if r["reason"] != "end_of_data"]  # paper keeps its position


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bars", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        replay = write_slice(data_dir() / BTC_1M, Path(tmp) / "BTCUSDT_1m.csv", args.bars)
        config = Path(tmp) / "bosun.toml"
        config.write_text(ALICE_SMA)
        expected = backtest_fills(replay, config)
        runs = []
        for _ in range(args.runs):
            seconds, fills = one_run(replay, config, args.bars)
            paper = [(f.side, f.reason, f.qty, f.price) for f in fills]
            if paper != expected:
                raise SystemExit(f"paper fills differ from the backtest's: {len(paper)} vs {len(expected)}")
            runs.append(seconds)
    best, median = min(runs), statistics.median(runs)
    print(f"bosun up --replay ({args.bars} real BTCUSDT 1m bars, speed 0, sma 5/20 with 0.01 BTC), {args.runs} runs; "
          f"{len(expected)} fills, equal to the backtest's in every run")
    print(f"  first bar stored -> all traded through: best {best:.2f} s / median {median:.2f} s = "
          f"{args.bars / best:,.0f} / {args.bars / median:,.0f} bars/s  (target 10,000/s: "
          f"{'met' if args.bars / median >= 10_000 else 'MISSED'})")
    print(f"reproduce: python bench/bench_paper.py --bars {args.bars} --runs {args.runs}")


if __name__ == "__main__":
    main()
