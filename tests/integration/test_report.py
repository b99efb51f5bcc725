"""`bosun report` from the ledger a paper run over NATS left in PostgreSQL: the same round trips
and trade metrics as `bosun backtest` on the same data and config, and one client's fills never
in another client's report."""

from __future__ import annotations

import csv
import json
import subprocess
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

from bosun.apps.outputs import IsoTime
from bosun.apps.report_cli import utc_ns
from proto import events as ev
from services.portfolio import metrics as perf
from tests.builders import ALICE_SMA
from tests.integration.test_pipeline import paper_run, private_nats  # noqa: F401 - a fixture
from tests.processes import bosun_argv, server_env

END_OF_DATA = "end_of_data"
# What the equity curve does not shape: a report reads them exactly as a backtest.
TRADE_METRICS = ("num_trades", "win_rate", "win_rate_long", "win_rate_short", "avg_win", "avg_loss", "largest_win",
                 "largest_loss", "profit_factor", "expectancy", "max_consecutive_wins", "max_consecutive_losses",
                 "total_fees", "turnover", "avg_holding_s")


def bosun(*args: str | Path, env: dict[str, str] | None = None, code: int = 0) -> str:
    """Runs `bosun *args`, expecting exit `code`; its stderr."""
    done = subprocess.run(bosun_argv(*map(str, args)), env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == code, done.stdout + done.stderr
    return done.stderr


def rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def fill_rows(path: Path) -> list[dict[str, str | Decimal]]:
    """fills.csv, its numbers as Decimals."""
    return [{**r, "qty": Decimal(r["qty"]), "price": Decimal(r["price"]), "fee": Decimal(r["fee"])} for r in rows(path)]


def as_rows(fills: list[ev.OrderFilled]) -> list[dict[str, str | Decimal]]:
    """Fills as fill_rows reads them."""
    iso = IsoTime()
    return [{"time": iso(f.ts_event), "symbol": f.symbol, "side": f.side, "qty": f.qty, "price": f.price,
             "fee": f.fee, "reason": f.reason} for f in fills]


def trip(n: int, row: dict[str, str]) -> SimpleNamespace:
    """A trades.csv row as metrics read a round trip (rows are in exit order: n stands for the exit time)."""
    return SimpleNamespace(exit_time_ns=n, side=row["side"], pnl=Decimal(row["pnl"]), fees=Decimal(row["fees"]),
                           symbol=row["symbol"],
                           qty=Decimal(row["qty"]), entry_price=Decimal(row["entry_price"]),
                           exit_price=Decimal(row["exit_price"]), duration_s=float(row["duration_s"]))


async def test_report_from_the_paper_ledger_reads_as_the_backtest(tmp_path, private_nats, fresh_database_url):
    replay, config, fills, _ = await paper_run(tmp_path, private_nats, fresh_database_url, bars=1000)
    report, backtest = tmp_path / "report", tmp_path / "backtest"
    bosun("report", "--config", config, "--client", "alice", "--out", report,
          env=server_env(private_nats, fresh_database_url))
    bosun("backtest", "--data", replay, "--config", config, "--out", backtest)

    assert {p.name for p in report.iterdir()} == {p.name for p in backtest.iterdir()}
    assert fill_rows(report / "fills.csv") == as_rows(fills)
    assert rows(report / "fills.csv") == [r for r in rows(backtest / "fills.csv") if r["reason"] != END_OF_DATA]
    trades = rows(report / "trades.csv")
    assert len(trades) >= 5
    assert trades == [r for r in rows(backtest / "trades.csv") if r["exit_reason"] != END_OF_DATA]

    got = json.loads((report / "metrics.json").read_text(), parse_float=Decimal)
    closed = [trip(n, r) for n, r in enumerate(trades)]
    want = {**perf.trade_stats(closed), "total_fees": sum(t.fees for t in closed),
            "turnover": sum(t.qty * (t.entry_price + t.exit_price) for t in closed),
            "avg_holding_s": sum(t.duration_s for t in closed) / len(closed)}
    for name in TRADE_METRICS:
        assert got[name] is not None, name
        assert abs(Decimal(str(got[name])) - Decimal(str(want[name]))) <= Decimal("1e-6"), name
    # Equity marked at the bars MARKET holds, as the backtest marks it: the same curve but for the
    # backtest's end_of_data close at the last bar, and so the same drawdown, up to that close.
    equity, ran_equity = rows(report / "equity.csv"), rows(backtest / "equity.csv")
    assert len(equity) == 1000 and equity[:-1] == ran_equity[:-1] and equity[-1]["time"] == ran_equity[-1]["time"]
    assert Decimal(equity[-1]["equity"]) - 10000 == got["total_pnl"]
    ran = json.loads((backtest / "metrics.json").read_text(), parse_float=Decimal)
    [close] = [r for r in rows(backtest / "fills.csv") if r["reason"] == END_OF_DATA]
    last = Decimal(rows(replay)[-1]["close"])
    slipped = Decimal(close["qty"]) * abs(Decimal(close["price"]) - last)
    assert ran["total_pnl"] == got["total_pnl"] - Decimal(close["fee"]) - slipped  # what the close cost
    # Drawdown to 1e-6: the backtest's curve, its last point before that close, against the report's figures.
    curve = [(utc_ns(r["time"].removesuffix("Z")), Decimal(r["equity"])) for r in ran_equity]
    curve[-1] = (curve[-1][0], curve[-1][1] + Decimal(close["fee"]) + slipped)
    start = int(rows(replay)[0]["open_time"]) * 1_000_000  # the first bar's open (ms in the file)
    for name, value in perf.drawdown(curve, Decimal(10000), start).items():
        assert abs(Decimal(str(got[name])) - Decimal(str(value))) <= Decimal("1e-6"), name

    # Per strategy (found through the order log), symbol and venue: one group each here, with the same
    # trade metrics as the whole.
    for group, name in (("by_strategy", "sma_btc"), ("by_symbol", "BTCUSDT"), ("by_venue", "binance"),
                        ("by_client", "alice")):
        assert list(got[group]) == [name], group
        for metric in TRADE_METRICS:
            if metric not in ("total_fees", "turnover"):
                assert abs(Decimal(str(got[group][name][metric])) - Decimal(str(want[metric]))) <= Decimal("1e-6")
        assert got[group][name]["pnl"] == sum(t.pnl for t in closed)
    # Execution quality of the signal orders: the paper run's as the backtest's (end_of_data orders are the
    # backtest's alone).
    signal = got["execution"]["by_reason"]["signal"]
    assert signal["orders"] >= len(trades) and signal["slippage_bps"] is not None
    assert signal == ran["execution"]["by_reason"]["signal"]
    assert list(got["execution"]["by_reason"]) == ["signal"]


TWO_CLIENTS = ALICE_SMA + """
[[clients]]
id = "bob"
capital = "20000"
strategies = ["sma_btc"]
sizing = { kind = "fixed", qty = "0.02" }
[clients.venues.binance]
fee_bps = "10"
slippage_bps = "1"
"""


async def test_two_clients_on_one_market_each_report_holds_only_its_own_fills(
        tmp_path, private_nats, fresh_database_url):
    _, config, fills, _ = await paper_run(tmp_path, private_nats, fresh_database_url, config_text=TWO_CLIENTS)
    env = server_env(private_nats, fresh_database_url)
    everyone, bob_only = tmp_path / "everyone", tmp_path / "bob"
    bosun("report", "--config", config, "--out", everyone, env=env)
    bosun("report", "--config", config, "--client", "bob", "--out", bob_only, env=env)

    by_client = {c: [f for f in fills if f.client == c] for c in ("alice", "bob")}
    assert by_client["alice"] and by_client["bob"]
    assert sorted(p.name for p in everyone.iterdir()) == ["alice", "bob"]
    for client, own in by_client.items():
        assert fill_rows(everyone / client / "fills.csv") == as_rows(own)
        metrics = json.loads((everyone / client / "metrics.json").read_text())
        assert list(metrics["by_client"]) == [client]
        assert metrics["execution"]["fills"] == len(own)  # its own orders' fills, none of the other's
    assert fill_rows(bob_only / "fills.csv") == as_rows(by_client["bob"])
    assert {r["qty"] for r in rows(everyone / "alice" / "trades.csv")} == {"0.01"}
    assert {r["qty"] for r in rows(everyone / "bob" / "trades.csv")} == {"0.02"}
    assert json.loads((bob_only / "metrics.json").read_text()) == json.loads(
        (everyone / "bob" / "metrics.json").read_text())

    # A client the config does not know has no capital to report against; nothing is written.
    refused = bosun("report", "--config", config, "--client", "carol", "--out", tmp_path / "carol", env=env, code=2)
    assert "client 'carol' is not in the config (alice, bob)" in refused
    assert not (tmp_path / "carol").exists()
    no_database = {k: v for k, v in env.items() if k != "BOSUN_DATABASE_URL"}
    refused = bosun("report", "--config", config, "--state-dir", tmp_path / "nowhere", "--out", tmp_path / "x",
                    env=no_database, code=2)
    assert "no PostgreSQL to read the ledger from: set BOSUN_DATABASE_URL" in refused


XRP_PERPETUAL = """
[[strategies]]
name = "sma_xrp"
symbol = "XRPUSDT"

[[clients]]
id = "alice"
capital = "10000"
strategies = ["sma_xrp"]
"""


async def test_the_report_equity_holds_the_funding_the_ledger_paid_on_the_real_xrpusdt_history(
        tmp_path, fresh_database_url):
    """The portfolio books a month of real XRPUSDT funding (91 times) on a position long 1000, then
    600, then short 500, then flat, into PostgreSQL; `bosun report` has each payment in equity.csv at
    its funding time and their sum, the hand computation, in total_funding and total_pnl."""
    import csv as csv_mod
    import os

    from bosun.runtime.clock import SimClock
    from bosun.runtime.inproc import InProcessBus
    from services.ingest.files import read_market_file
    from services.portfolio.actor import PortfolioActor
    from services.portfolio.config import PortfolioConfig
    from services.portfolio.store import PortfolioStore
    from tests.datafiles import XRP_FUNDING, XRP_MARK_8H, data_file

    with open(data_file(XRP_MARK_8H)) as f:
        marks = {int(r["open_time"]) * 1_000_000: Decimal(r["open"]) for r in csv_mod.DictReader(f)}
    funding = list(read_market_file(data_file(XRP_FUNDING)))
    hour = 3_600 * 10**9
    moves = {0: ("buy", "1000", -hour), 10: ("sell", "400", -4 * hour), 60: ("sell", "1100", -4 * hour)}

    def held(n: int) -> Decimal:
        return Decimal(1000) if n < 10 else Decimal(600) if n < 60 else Decimal(-500)

    expected = sum((held(n) * marks[e.ts_event] * e.rate for n, e in enumerate(funding)), Decimal(0))

    def fill(n: int, side: str, qty: str, ts: int, price: Decimal) -> ev.OrderFilled:
        return ev.OrderFilled(id=f"x{n}", ts_event=ts, client_order_id=f"o{n}", client="alice", venue="binance",
                              symbol="XRPUSDT", side=side, qty=Decimal(qty), price=price, fee=Decimal("0.1"))

    bus = InProcessBus()
    effects: list = []
    bus.on_effect(effects.append)
    actor = bus.attach(PortfolioActor(SimClock(), bus, PortfolioConfig(capital={"alice": Decimal(10_000)})))
    for n, event in enumerate(funding):
        if n in moves:
            side, qty, before = moves[n]
            bus.publish(fill(n, side, qty, event.ts_event + before, marks[event.ts_event]))
        bus.publish(ev.PriceSnapshot(id=f"p{n}", ts_event=event.ts_event, venue="binance", symbol="XRPUSDT",
                                     price=marks[event.ts_event]))
        bus.publish(event)
        bus.drain()
    last = funding[-1].ts_event
    bus.publish(fill(99, "buy", "500", last + hour, marks[last]))  # flat
    bus.drain()
    store = await PortfolioStore.connect(fresh_database_url)
    try:
        await store.migrate()
        await store.carry_out(effects)
    finally:
        await store.close()
    position = actor.positions()[("alice", "binance", "XRPUSDT")]
    assert position.qty == 0 and position.funding == expected != 0

    config, out = tmp_path / "bosun.toml", tmp_path / "report"
    config.write_text(XRP_PERPETUAL)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOSUN_NATS_URL")}
    bosun("report", "--config", config, "--state-dir", tmp_path, "--client", "alice", "--out", out,
          env={**env, "BOSUN_DATABASE_URL": fresh_database_url})
    got = json.loads((out / "metrics.json").read_text(), parse_float=Decimal)
    assert got["total_funding"] == expected
    equity = [(r["time"], Decimal(r["equity"])) for r in rows(out / "equity.csv")]
    final = Decimal(10_000) + position.realized_pnl - position.fees - expected
    assert equity[-1][1] == final and got["total_pnl"] == final - 10_000
    iso = IsoTime()
    assert {iso(e.ts_event) for e in funding} <= {t for t, _ in equity}  # a point at each funding time
