"""`bosun status`, `bosun halt`, `bosun reduce`, `bosun resume`, `bosun audit`, and the status `bosun up` shows.

They find NATS through BOSUN_NATS_URL or the URLs `bosun up` recorded in its state dir."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import msgspec
import nats
from nats.errors import NoRespondersError, TimeoutError as NatsTimeout
from nats.js.errors import BucketNotFoundError, KeyNotFoundError, NotFoundError

from bosun.apps import config as config_mod
from bosun.runtime.urls import nats_servers, require_urls, status_subject
from proto import codec
from proto import events as ev
from proto import subjects as sj

EXIT_STREAM_UNAVAILABLE = 3  # ingest's exit code when the live stream cannot be reached
REQUEST_TIMEOUT_S = 1.0


async def set_trading(nc, enabled: bool) -> None:
    """The kill switch: a KV put, exactly what `nats pub '$KV.control.trading_enabled' false` does."""
    kv = await nc.jetstream().key_value(sj.CONTROL_BUCKET)
    await kv.put(sj.TRADING_ENABLED_KEY, codec.encode_trading_enabled(enabled))


async def ping(nc, service: str) -> bool:
    try:
        await nc.request(f"$SRV.PING.bosun-{service}", b"", timeout=REQUEST_TIMEOUT_S)
        return True
    except (NoRespondersError, NatsTimeout):
        return False


async def _service_status(nc, service: str) -> dict[str, Any] | None:
    try:
        msg = await nc.request(status_subject(service), b"", timeout=REQUEST_TIMEOUT_S)
        return json.loads(msg.data)
    except (NoRespondersError, NatsTimeout, ValueError):
        return None


async def _trading_enabled(js) -> bool | str | None:
    """True/False; None when never set; the raw text when unreadable (the services treat that as off)."""
    try:
        kv = await js.key_value(sj.CONTROL_BUCKET)
        value = (await kv.get(sj.TRADING_ENABLED_KEY)).value or b""
    except (BucketNotFoundError, KeyNotFoundError, NotFoundError):
        return None
    try:
        return codec.decode_trading_enabled(value)
    except ValueError:
        return value[:32].decode(errors="replace")


async def _prices(js) -> list[ev.PriceSnapshot]:
    try:
        kv = await js.key_value(sj.PRICES_BUCKET)
        keys = await kv.keys()
    except (BucketNotFoundError, NotFoundError, nats.js.errors.NoKeysError):
        return []
    snapshots = []
    for key in sorted(keys):
        with_value = await kv.get(key)
        try:
            snapshots.append(codec.decode(with_value.value, ev.PriceSnapshot))
        except (msgspec.DecodeError, ValueError):  # ValueError: proto.amounts refused a number in it
            continue
    return snapshots


async def gather(nc) -> dict[str, Any]:
    js = nc.jetstream()
    enabled, prices, risk, execution, portfolio = await asyncio.gather(
        _trading_enabled(js), _prices(js), _service_status(nc, "risk"), _service_status(nc, "execution"),
        _service_status(nc, "portfolio"))
    now = time.time_ns()
    return {
        "trading_enabled": enabled,
        "prices": [{"key": sj.price_key(p.venue, p.symbol), "price": str(p.price),
                    "time": _utc(p.ts_event), "age_s": round((now - p.ts_event) / 1e9, 1)} for p in prices],
        "risk": risk,
        "execution": execution,
        "portfolio": portfolio,
    }


async def client_book(nc, client: str) -> dict[str, Any] | None:
    """The portfolio service's answer for one client (services.portfolio.client_view); None when
    it does not answer."""
    try:
        msg = await nc.request(sj.portfolio_client(sj.check_token(client, "--client")), b"",
                               timeout=REQUEST_TIMEOUT_S)
        return json.loads(msg.data)
    except (NoRespondersError, NatsTimeout):
        return None


def render_client(book: dict[str, Any]) -> str:
    pnl, exposure, m = book["pnl"], book["exposure"], book["metrics"]
    lines = [f"client       {book['client']}  equity {book['equity']}  capital {book['capital']}",
             f"pnl          total {pnl['total']}  realized {pnl['realized']}  unrealized {pnl['unrealized']}  "
             f"fees {pnl['fees']}",
             f"exposure     gross {exposure['gross']}  net {exposure['net']}",
             f"round trips  {m['num_trades']}  win rate {m['win_rate']}  expectancy {m['expectancy']}"]
    if (x := m.get("execution")) is not None:  # the orders seen since the portfolio service started
        ack = (x["order_to_ack_ms"] or {}).get("p50")
        lines.append(f"execution    orders {x['orders']}  rejected {x['rejected']}  fill ratio {x['fill_ratio']}  "
                     f"slippage {x['slippage_bps']} bps  ack p50 {ack} ms")
    for row in book["positions"]:
        lines.append(f"position     {row['venue']}.{row['symbol']:<12} qty {row['qty']:>12}  avg {row['avg_price']}  "
                     f"mark {row['mark']}  unrealized {row['unrealized_pnl']}")
    return "\n".join(lines)


def _utc(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns / 1e9, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def age(price: dict[str, Any]) -> str:
    """Seconds for a live price; the price's own time for a replayed (hours old) one."""
    return f"{price['age_s']}s old" if price["age_s"] < 3600 else f"at {price['time']}"


def trading_word(enabled: bool | str | None) -> str:
    if enabled is None:
        return "OFF (never set)"
    if isinstance(enabled, str):
        return f"OFF (unreadable value {enabled!r})"
    return "ON" if enabled else "OFF"


def render_line(status: dict[str, Any]) -> str:
    """One compact line for the live view of `bosun up`."""
    parts = [f"trading {trading_word(status['trading_enabled'])}"]
    if (status["execution"] or {}).get("capped_live"):
        parts.insert(0, "CAPPED LIVE")
    parts += [f"{scope} {state.upper()}" for scope, state in ((status["risk"] or {}).get("scopes") or {}).items()]
    parts += [f"{p['key']} {p['price']} ({age(p)})" for p in status["prices"]]
    execution, portfolio = status["execution"] or {}, status["portfolio"] or {}
    parts.append(f"open orders {len(execution.get('open_orders', ())) if execution else '?'}")
    parts.append(f"fills {execution.get('fills', '?')}")
    parts.append(f"breaches {status['risk']['breached'] if status['risk'] else '?'}")
    for row in portfolio.get("positions", []):
        parts.append(f"{row['client']} {row['symbol']} pos {row['qty']} realized {row['realized_pnl']} "
                     f"unrealized {row['unrealized_pnl']}")
    return " | ".join(parts)


def render(status: dict[str, Any]) -> str:
    lines = [f"trading      {trading_word(status['trading_enabled'])}"]
    if (status["execution"] or {}).get("capped_live"):
        lines.insert(0, status["execution"]["capped_live"])
    for p in status["prices"]:
        lines.append(f"price        {p['key']:<20} {p['price']:>14}  {age(p)}")
    risk, execution, portfolio = status["risk"], status["execution"], status["portfolio"]
    if risk is None:
        lines.append("risk         not answering")
    else:
        by_limit = "".join(f"  {limit} {n}" for limit, n in risk["breaches_by_limit"].items())
        lines.append(f"risk         approved {risk['approved']}  breached {risk['breached']}{by_limit}")
        states = risk.get("limit_state", {})  # what a limit holds now: the day's loss, a tripped drawdown, ...
        for client, limits in risk["limits"].items():
            for name, text in limits.items():
                state = {k: v for k, v in states.get(client, {}).get(name, {}).items() if k != "trips"}
                now = f"  ({', '.join(f'{k} {v}' for k, v in state.items())})" if state else ""
                lines.append(f"limit        {client:<10} {name:<20} {text}{now}")
        for client, breakers in risk.get("breakers", {}).items():
            for name, text in breakers.items():
                lines.append(f"breaker      {client:<10} {name:<20} {text}")
        for scope, state in risk.get("scopes", {}).items():  # only those not active
            lines.append(f"scope        {scope:<31} {state.upper()}")
        for breach in risk.get("last_breaches", [])[-5:]:
            lines.append(f"breach       {breach['at']}  {breach['scope']}  {breach['limit']}: {breach['detail']}")
    if execution is None:
        lines.append("execution    not answering")
    else:
        lines.append(f"orders       open {len(execution['open_orders'])}  fills {execution['fills']}")
    if portfolio is None:
        lines.append("portfolio    not answering")
    else:
        for row in portfolio.get("positions", []):
            lines.append(f"position     {row['client']:<10} {row['venue']}.{row['symbol']:<12} qty {row['qty']:>12}  "
                         f"avg {row['avg_price']}  realized {row['realized_pnl']}  unrealized {row['unrealized_pnl']}"
                         f"  fees {row['fees']}")
    return "\n".join(lines)


async def _run(args) -> int:
    cfg = config_mod.load(args.config)
    state_dir = args.state_dir or Path(cfg.state_dir)
    nats_url, _ = require_urls(state_dir)
    try:
        nc = await nats.connect(nats_servers(nats_url), name=f"bosun-{args.command}", connect_timeout=2,
                                max_reconnect_attempts=0, allow_reconnect=False)
    except Exception as exc:  # noqa: BLE001 - any connect failure gets the same plain answer
        print(f"bosun {args.command}: cannot reach NATS at {nats_url}: {exc}", file=sys.stderr)
        return 1
    try:
        if args.command in ("halt", "reduce", "resume"):
            from bosun.apps import trading_cli

            flatten = getattr(args, "flatten", False)
            positions = None
            if flatten:
                execution = await _service_status(nc, "execution")
                if execution is None:
                    print("bosun halt --flatten: execution is not answering; nothing to flatten with", file=sys.stderr)
                    return 1
                positions = execution["positions"]
            for text in await trading_cli.run(nc, args.command, args.client, args.reason, flatten, positions):
                print(text)
            return 0
        if args.command == "audit":
            from bosun.apps import audit_cli

            try:
                keep = audit_cli.keep_for(args.client, args.kind)
                since = audit_cli.since_time(args.since) if args.since else None
            except ValueError as exc:
                print(f"bosun audit: {exc}", file=sys.stderr)
                return 2
            await audit_cli.read(nc.jetstream(), since, keep, print)
            return 0
        if getattr(args, "client", None) is not None:
            book = await client_book(nc, args.client)
            if book is None or "error" in book:
                print(f"bosun status: {'portfolio not answering' if book is None else book['error']}",
                      file=sys.stderr)
                return 1
            print(json.dumps(book, indent=2) if args.json else render_client(book))
            return 0
        if getattr(args, "watch", False):
            from bosun.apps.status_view import watch

            await watch(nc, args.every)
            return 0
        status = await gather(nc)
        print(json.dumps(status, indent=2) if args.json else render(status))
        return 0
    finally:
        await nc.close()


def main(args) -> int:
    import uvloop

    return uvloop.run(_run(args))
