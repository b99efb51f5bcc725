"""How long the portfolio takes to read its book at start, as the history grows: from every stored
fill (what it did before ledger snapshots) against the newest snapshot plus the fills after it.

    python bench/bench_portfolio_startup.py [--histories 10000 50000 200000] [--after 1000] [--repeat 3]

An embedded PostgreSQL in a temp dir. For each history size, fills for two clients on three markets
are stored through the portfolio's own store (as `bosun run portfolio` stores them), a snapshot is
taken, then `--after` more fills. Timed, alternately, best of `--repeat`: `store.fills()` + building
the actor from them, and `store.restored()` + building the actor from that."""

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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bosun.apps.config import ClientConfig, Config  # noqa: E402
from bosun.runtime.clock import SimClock  # noqa: E402
from bosun.runtime.embedded import EmbeddedPostgres  # noqa: E402
from proto import events as ev  # noqa: E402
from services.portfolio.actor import PortfolioActor  # noqa: E402
from services.portfolio.store import PortfolioStore  # noqa: E402

CONFIG = Config(clients=[ClientConfig(id="alice"), ClientConfig(id="bob")], strategies=[]).portfolio_config()
MARKETS = [("binance", "BTCUSDT"), ("binance_usdm", "BTCUSDT"), ("binance", "ETHUSDT")]
BATCH = 500  # fills per stored round, as the binding batches them
RECENT = 10_000  # bosun.apps.run.RECENT_FILL_IDS


class Effects:
    def __init__(self) -> None:
        self.effects: list = []

    def publish(self, message) -> None:
        pass

    def effect(self, effect) -> None:
        self.effects.append(effect)

    def set_trading_enabled(self, enabled: bool) -> None:
        raise AssertionError


def fill(n: int) -> ev.OrderFilled:
    venue, symbol = MARKETS[n % 3]
    return ev.OrderFilled(id=f"f-{n}", ts_event=1_700_000_000_000_000_000 + n * 1_000_000, client_order_id=f"o-{n}",
                          client="alice" if n % 5 else "bob", venue=venue, symbol=symbol,
                          side="buy" if (n // 3) % 3 else "sell", qty=Decimal("0.01"),
                          price=Decimal(60000 + n % 97), fee=Decimal("0.024"))


async def store_fills(store: PortfolioStore, actor: PortfolioActor, out: Effects, first: int, n: int) -> None:
    for start in range(first, first + n, BATCH):
        for i in range(start, min(start + BATCH, first + n)):
            actor.on_order_filled(fill(i))
        await store.carry_out(out.effects)
        out.effects.clear()


async def snapshot(store: PortfolioStore, actor: PortfolioActor, out: Effects) -> None:
    actor.on_snapshot_due(2_000_000_000_000_000_000)
    await store.carry_out(out.effects)
    out.effects.clear()


async def from_fills(store: PortfolioStore) -> PortfolioActor:
    return PortfolioActor(SimClock(), Effects(), CONFIG, await store.fills())


async def from_snapshot(store: PortfolioStore) -> PortfolioActor:
    return PortfolioActor(SimClock(), Effects(), CONFIG, restored=await store.restored(RECENT))


async def bench(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o755)  # as root, embedded PostgreSQL must reach its state dir
        rows = await _measure(Path(tmp), args)
    _print(rows, args)


async def _measure(tmp: Path, args: argparse.Namespace) -> list[tuple[int, float, float]]:
    rows = []
    with EmbeddedPostgres(tmp / "pg") as pg:
        for history in args.histories:
            db = f"h{history}"
            admin = await asyncpg.connect(pg.url)
            await admin.execute(f'CREATE DATABASE "{db}"')
            await admin.close()
            store = await PortfolioStore.connect(pg.url.rsplit("/", 1)[0] + f"/{db}")
            try:
                await store.migrate()
                out = Effects()
                live = PortfolioActor(SimClock(), out, CONFIG)
                await store_fills(store, live, out, 0, history)
                await snapshot(store, live, out)
                await store_fills(store, live, out, history, args.after)
                best = {"every fill": float("inf"), "snapshot + after": float("inf")}
                for _ in range(args.repeat):  # alternately, so that load on a shared machine hits both
                    for name, read in (("every fill", from_fills), ("snapshot + after", from_snapshot)):
                        t0 = time.perf_counter()
                        actor = await read(store)
                        best[name] = min(best[name], time.perf_counter() - t0)
                        assert actor.positions() == live.positions(), name
                rows.append((history, best["every fill"], best["snapshot + after"]))
                print(f"  {history:>9,} fills stored: every fill {best['every fill']:.3f} s, "
                      f"snapshot + {args.after:,} after {best['snapshot + after']:.3f} s", flush=True)
            finally:
                await store.close()
    return rows


def _print(rows: list[tuple[int, float, float]], args: argparse.Namespace) -> None:
    print("portfolio start-up read (embedded PostgreSQL; best of", args.repeat, "alternating runs)")
    print("| fills stored | from every fill (s) | from the snapshot + fills after it (s) |")
    print("|---:|---:|---:|")
    for history, every, snap in rows:
        print(f"| {history:,} | {every:.3f} | {snap:.3f} |")
    print(f"reproduce: python bench/bench_portfolio_startup.py --histories {' '.join(map(str, args.histories))} "
          f"--after {args.after} --repeat {args.repeat}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--histories", type=int, nargs="+", default=[10_000, 50_000, 200_000])
    parser.add_argument("--after", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=3)
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
