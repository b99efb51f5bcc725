"""`bosun report`: the files of a backtest (fills.csv, trades.csv, equity.csv, metrics.json,
report.html) from the live ledger in PostgreSQL, per client; strategies and execution quality
from the client's order log in NATS and its equity marked at the bars of its markets there
(bosun.apps.order_log); and, when the portfolio service
answers, the client's book now (its endpoint, as `bosun status --client`).

PostgreSQL is found like every process finds it (BOSUN_DATABASE_URL, else the URLs `bosun up`
recorded in the state dir); each client's capital comes from the config it traded with. With
--client the files go into --out; without, each client with fills gets its own subdirectory
`<out>/<client>/`, so no file ever mixes two clients. How equity is recomputed, and which
metrics compare with a backtest's: bosun.apps.ledger."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import asyncpg
import nats

from bosun.apps import config as config_mod
from bosun.apps import control, ledger, order_log, result_files
from bosun.apps.outputs import IsoTime
from bosun.runtime.config import ConfigError
from bosun.runtime.urls import DATABASE_URL_ENV, URLS_FILE, nats_servers, urls_from_env_or_state
from proto.subjects import check_token
from services.portfolio.store import PortfolioStore

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def utc_ns(text: str) -> int:
    """An ISO-8601 date or time (UTC unless it names an offset) as ns since the epoch."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO-8601 time "
                                         f"(e.g. 2024-01-31 or 2024-01-31T12:00:00Z)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return (when - _EPOCH) // timedelta(microseconds=1) * 1000


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("report", help="write a backtest's files and report.html from the live ledger",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--config", type=Path, help="the TOML config the clients traded with (their capital)")
    p.add_argument("--state-dir", type=Path, help="where `bosun up` recorded its URLs (default: the config's)")
    p.add_argument("--client", help="this client only, its files straight into --out")
    p.add_argument("--since", type=utc_ns, metavar="T", help="from this time on (ISO-8601, UTC)")
    p.add_argument("--until", type=utc_ns, metavar="T", help="before this time (ISO-8601, UTC)")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output directory")
    return p


def main(args: argparse.Namespace) -> int:
    import uvloop

    try:
        return uvloop.run(_run(args))
    except (ConfigError, ValueError) as exc:
        print(f"bosun report: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"bosun report: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 2


async def _run(args: argparse.Namespace) -> int:
    cfg = config_mod.load(args.config)
    window = ledger.Window(args.since, args.until)
    if args.client is not None:
        check_token(args.client, "--client")
    state_dir = args.state_dir or Path(cfg.state_dir)
    nats_url, database_url = urls_from_env_or_state(state_dir)
    if not database_url:
        raise ConfigError(f"no PostgreSQL to read the ledger from: set {DATABASE_URL_ENV}, or start `bosun up` "
                          f"(it records its URLs in {state_dir / URLS_FILE})")
    capital = {c.id: c.capital for c in cfg.clients}
    store = await PortfolioStore.connect(database_url)
    nc = await _order_log(nats_url)
    try:
        clients = [args.client] if args.client is not None else await store.clients()
        for client in clients:
            if client not in capital:
                raise ConfigError(f"client {client!r} is not in the config ({', '.join(sorted(capital))}): "
                                  f"pass the --config it traded with")
            journal, bars, fills = None, [], await store.fills(client)
            if nc is not None:
                journal, unreadable = await order_log.client_journal(nc.jetstream(), client)
                bars, bad_bars = await order_log.market_bars(nc.jetstream(), {(f.venue, f.symbol) for f in fills})
                if unreadable or bad_bars:
                    print(f"{client}: {unreadable} undecodable messages in its order log and {bad_bars} among the "
                          f"bars of its markets skipped", file=sys.stderr)
            report = ledger.client_report(client, capital[client], fills, await store.round_trips(client), window,
                                          journal, await store.funding(client), bars)
            out = args.out if args.client is not None else args.out / client
            result_files.write(out, report.fills, report.trips, report.equity, report.metrics, report.capital,
                               _title(client, window))
            m = report.metrics
            print(f"{client}: {len(report.fills):,} fills, {m['num_trades']:,} round trips, "
                  f"total pnl {m['total_pnl']:.2f}; wrote {out}/")
            book = await control.client_book(nc, client) if nc is not None else None
            if book is not None and "error" not in book:  # the portfolio service is running: the book now
                print(f"{client} now: equity {book['equity']} at the newest prices, exposure gross "
                      f"{book['exposure']['gross']} net {book['exposure']['net']}, "
                      f"{sum(1 for p in book['positions'] if Decimal(p['qty']))} open positions")
    except asyncpg.UndefinedTableError:
        raise ConfigError("the database holds no ledger: the portfolio service has never run against it") from None
    finally:
        await store.close()
        if nc is not None:
            await nc.close()
    if not clients:
        print("no fills in the ledger: nothing to report", file=sys.stderr)
    return 0


async def _order_log(nats_url: str | None) -> nats.aio.client.Client | None:
    """NATS, for the order log behind the strategies and the execution quality; without it the
    report still has everything the ledger holds, and says what it lacks."""
    missing = ("strategies show as unknown, execution quality counts no order and the equity is marked at fill "
               "prices, not at the bars")
    if not nats_url:
        print(f"bosun report: no NATS to read the order log from: {missing}", file=sys.stderr)
        return None
    try:
        return await nats.connect(nats_servers(nats_url), name="bosun-report", connect_timeout=2,
                                  max_reconnect_attempts=0, allow_reconnect=False)
    except Exception as exc:  # noqa: BLE001 - any connect failure gets the same plain answer
        print(f"bosun report: cannot reach NATS at {nats_url} ({exc}): {missing}", file=sys.stderr)
        return None


def _title(client: str, window: ledger.Window) -> str:
    iso = IsoTime()
    since = f" from {iso(window.since_ns)}" if window.since_ns is not None else ""
    until = f" until {iso(window.until_ns)}" if window.until_ns is not None else ""
    return f"bosun report: {client}{since}{until}"
