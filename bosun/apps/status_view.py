"""`bosun status --watch`: the platform right now, redrawn in place from the services' own
answers (micro PING and status endpoints, KV `prices` and `control`). `view()` is pure, so
what an operator sees is tested without a terminal."""

from __future__ import annotations

import asyncio
from typing import Any

from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from bosun.apps import control
from bosun.apps.config import SERVICES

STALE_AFTER_S = 60.0  # a live price older than this is shown as stale


def view(status: dict[str, Any], health: dict[str, bool]) -> Group:
    """Trading state, services' health, prices and their age, positions and PnL, open orders,
    risk's limits and its breaches by limit."""
    enabled = status["trading_enabled"]
    trading = Text(f"trading {control.trading_word(enabled)}", style="bold green" if enabled is True else "bold red")
    services = Text("  ".join(f"{s} {'up' if health.get(s) else 'DOWN'}" for s in SERVICES))
    services.highlight_words([f"{s} DOWN" for s in SERVICES], style="bold red")
    parts: list[Any] = [trading, services]
    if (status["execution"] or {}).get("capped_live"):
        parts.insert(0, Text(status["execution"]["capped_live"], style="bold yellow"))

    prices = Table("market", "price", "age", title="prices", title_justify="left")
    for p in status["prices"]:
        stale = p["age_s"] > STALE_AFTER_S
        prices.add_row(p["key"], p["price"], Text(control.age(p), style="yellow" if stale else ""))
    parts.append(prices)

    portfolio = status["portfolio"] or {}
    positions = Table("client", "market", "qty", "avg", "realized", "unrealized", "fees", title="positions",
                      title_justify="left")
    for row in portfolio.get("positions", []):
        positions.add_row(row["client"], f"{row['venue']}.{row['symbol']}", row["qty"], row["avg_price"],
                          row["realized_pnl"], row["unrealized_pnl"], row["fees"])
    parts.append(positions if portfolio else Text("portfolio not answering", style="red"))
    if portfolio.get("clients"):
        parts.append(_ledger(portfolio))

    execution = status["execution"]
    if execution is None:
        parts.append(Text("execution not answering", style="red"))
    else:
        orders = Table("order", "client", "market", "side", "type", "remaining", title=(
            f"open orders {len(execution['open_orders'])}, fills {execution['fills']}"), title_justify="left")
        for coid, o in execution["open_orders"].items():
            orders.add_row(coid, o["client"], f"{o['venue']}.{o['symbol']}", o["side"], o["type"], o["remaining"])
        parts.append(orders)

    risk = status["risk"]
    if risk is None:
        parts.append(Text("risk not answering", style="red"))
    else:
        limits = Table("client", "limit", "rule", title=f"risk: approved {risk['approved']}, breached "
                       f"{risk['breached']}", title_justify="left")
        for client, rules in risk["limits"].items():
            for name, text in rules.items():
                limits.add_row(client, name, text)
        parts.append(limits)
        if risk["breaches_by_limit"]:
            parts.append(Text("breaches: " + ", ".join(f"{limit} {n}" for limit, n in risk["breaches_by_limit"].items()),
                              style="yellow"))
        scopes = risk.get("scopes", {})  # only those not active
        if not scopes:
            parts.append(Text("scopes: every one active", style="green"))
        for scope, state in scopes.items():
            parts.append(Text(f"{scope} {state.upper()}", style="bold red" if state == "halted" else "yellow"))
        for breach in risk.get("last_breaches", [])[-3:]:
            parts.append(Text(f"{breach['at']} {breach['scope']} {breach['limit']}: {breach['detail']}", style="yellow"))
    return Group(*parts)


def _ledger(portfolio: dict[str, Any]) -> Table:
    """Each client over every venue; a market held without a fresh price in yellow."""
    table = Table("client", "equity", "realized", "unrealized", "funding", "gross", "net", "no fresh price",
                  title=f"ledger: equity in total {portfolio['equity_total']}", title_justify="left")
    for client, c in portfolio["clients"].items():
        funding = ", ".join(f"{v} {q}" for q, v in c["funding"].items())
        table.add_row(client, c["equity"], c["realized_pnl"], c["unrealized_pnl"], funding, c["gross_exposure"],
                      c["net_exposure"], Text(", ".join(c["unmarked"]), style="yellow"))
    return table


async def health(nc) -> dict[str, bool]:
    answers = await asyncio.gather(*(control.ping(nc, s) for s in SERVICES))
    return dict(zip(SERVICES, answers))


async def watch(nc, every_s: float) -> None:
    """Redraw until interrupted."""
    with Live(auto_refresh=False) as live:
        while True:
            status, up = await asyncio.gather(control.gather(nc), health(nc))
            live.update(view(status, up), refresh=True)
            await asyncio.sleep(every_s)
