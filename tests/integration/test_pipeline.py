"""The whole platform over real processes: `bosun up --replay` on a slice of real BTCUSDT
minutes, against a private nats-server and a fresh PostgreSQL database."""

from __future__ import annotations

import csv
import subprocess
from decimal import Decimal
from pathlib import Path

import asyncpg
import nats
import pytest

from bosun.apps.outputs import IsoTime
from bosun.runtime.embedded import EmbeddedNats
from proto import codec
from proto import events as ev
from services.execution.orders import OrderBook
from tests.builders import ALICE_SMA
from tests.datafiles import BTC_1M, BTC_BOOK_TICKER, BTC_TRADES, data_file, write_slice
from tests.natshelp import stream_messages, stored_count
from tests.processes import bosun_argv, server_env

BARS = 400
@pytest.fixture
def private_nats(tmp_path: Path):
    """A nats-server of this test's own: durable consumers and streams start empty."""
    with EmbeddedNats(tmp_path / "nats") as server:
        yield server.url


def recompute(fills: list[ev.OrderFilled]) -> tuple[Decimal, Decimal, Decimal]:
    """Position, average price and realized PnL net of fees, by average cost, by hand."""
    qty = avg = realized = Decimal(0)
    for f in fills:
        signed = f.qty if f.side == "buy" else -f.qty
        realized -= f.fee
        if qty == 0 or (qty > 0) == (signed > 0):
            avg = (avg * abs(qty) + f.price * f.qty) / (abs(qty) + f.qty)
            qty += signed
            continue
        closed = min(abs(qty), f.qty)
        realized += closed * (f.price - avg) * (1 if qty > 0 else -1)
        qty += signed
        if qty != 0 and (qty > 0) == (signed > 0):  # flipped: the rest opens at the fill price
            avg = f.price
        elif qty == 0:
            avg = Decimal(0)
    return qty, avg, realized


async def paper_run(tmp_path: Path, nats_url: str, database_url: str, bars: int = BARS, config_text: str = ALICE_SMA,
                    files: list[Path] | None = None):
    """`bosun up --replay` of the first `bars` real minutes (or of `files`, whole) until traded through;
    the minutes' file (or `files`), the config, its fills and positions."""
    replay = files or write_slice(data_file(BTC_1M), tmp_path / "BTCUSDT_1m.csv", bars)
    config = tmp_path / "bosun.toml"
    config.write_text(config_text)
    done = subprocess.run(
        bosun_argv("up", "--config", str(config), "--state-dir", str(tmp_path / "state"),
                   *(a for path in (replay if files else [replay]) for a in ("--replay", str(path))),
                   "--speed", "0", "--exit-when-done"),
        env=server_env(nats_url, database_url), capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr

    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        assert await stored_count(js, "MARKET", "md.bar.binance.BTCUSDT") == bars or files
        n_fills = await stored_count(js, "ORDERS", "order.filled.>")
        fills = [codec.decode(m.data, ev.OrderFilled) for m in await stream_messages(js, "order.filled.>", n_fills)]
        positions = [codec.decode(m.data, ev.PositionChanged)
                     for m in await stream_messages(js, "position.changed.>", n_fills)]
    finally:
        await nc.close()
    return replay, config, fills, positions


async def test_replay_trades_through_the_whole_platform(tmp_path, private_nats, fresh_database_url):
    _, _, fills, positions = await paper_run(tmp_path, private_nats, fresh_database_url)
    assert len(fills) >= 4, "sma 5/20 over 400 real minutes crosses several times"

    qty, avg, realized = recompute(fills)
    assert qty == sum((f.qty if f.side == "buy" else -f.qty) for f in fills)
    last = positions[-1]
    assert (last.qty, last.avg_price, last.realized_pnl) == (qty, avg, realized)
    assert last.fees == sum(f.fee for f in fills)

    db = await asyncpg.connect(fresh_database_url)
    try:
        stored = await db.fetch("SELECT fill_id FROM fills")
        row = await db.fetchrow("SELECT qty, avg_price, realized_pnl FROM positions WHERE client = 'alice'")
    finally:
        await db.close()
    assert {r["fill_id"] for r in stored} == {f.id for f in fills}
    assert row["qty"] == qty


# The book model with a share so small that 0.01 BTC often fills over several minutes.
BOOK = ALICE_SMA + 'fill_model = "book"\nbar_volume_share = "0.0003"\n'


@pytest.mark.parametrize("config_text", [ALICE_SMA, BOOK], ids=["simple", "book"])
async def test_paper_trading_over_nats_fills_exactly_as_the_backtest(tmp_path, private_nats, fresh_database_url,
                                                                     config_text):
    replay, config, fills, _ = await paper_run(tmp_path, private_nats, fresh_database_url, bars=1000,
                                               config_text=config_text)
    if config_text is BOOK:
        assert len({f.client_order_id for f in fills}) < len(fills), "some order should fill in parts"
    expected, paper = backtest_and_paper(tmp_path, [replay], config, fills)
    assert len(paper) >= 10
    if config_text is BOOK:
        # Several orders can be working at once, and one placed after the bars it fills on has its
        # fills stored after later ones of another order: the same fills, stored in another order.
        expected, paper = sorted(expected, key=_by_fill), sorted(paper, key=_by_fill)
    assert expected == paper


# The book model on the real BTCUSDT trades capture (11 minutes), sma 5/20 on 5 s bars built from the
# trades, entering by limit orders 1 bp from the signal's price, good for 30 s: targets cancel working
# limit orders, so a fill can reach execution after the target that cancels its order.
CAPTURE_BOOK = ALICE_SMA.replace('qty = "0.01"', 'qty = "0.05"') + (
    'fill_model = "book"\nentry = "limit"\nlimit_offset_bps = "1"\nlimit_ttl_s = "30"\n'
    '[ingest]\ninterval = "5s"\n')


@pytest.mark.parametrize("files", [[BTC_TRADES], [BTC_TRADES, BTC_BOOK_TICKER]], ids=["trades", "trades+quotes"])
async def test_paper_trading_on_a_trades_capture_converges_and_fills_as_the_backtest(tmp_path, private_nats,
                                                                                   fresh_database_url, files):
    replay = [data_file(name) for name in files]
    _, config, fills, _ = await paper_run(tmp_path, private_nats, fresh_database_url, config_text=CAPTURE_BOOK,
                                          files=replay)
    nc = await nats.connect(private_nats)
    try:
        js = nc.jetstream()
        log = [codec.decode_any(m.data) for m in await stream_messages(js, "order.>", await stored_count(
            js, "ORDERS", "order.>"))]
        approved = await stream_messages(js, "target.approved.>", await stored_count(js, "TARGETS", "target.approved.>"))
    finally:
        await nc.close()
    # Whatever order NATS delivered targets and fills in, execution ends on the newest target: the
    # position and the orders still working (no cancel sent) add up to it.
    book, canceled = OrderBook(), set()
    for entry in log:
        book.apply(entry)
        if type(entry) is ev.CancelOrder:
            canceled.add(entry.client_order_id)
    key = ("alice", "binance", "BTCUSDT")
    working = sum(o.signed_remaining for coid, o in book.open.items() if coid not in canceled)
    assert book.position(key) + working == codec.decode(approved[-1].data, ev.TargetApproved).target.qty

    expected, paper = backtest_and_paper(tmp_path, replay, config, fills)
    assert len(paper) >= 10
    if sorted(expected, key=_by_fill) != sorted(paper, key=_by_fill):
        # Known gap: execution plans a target with the fills it has received, and on paper the venue's
        # fills reach it some time after the targets decided after them (the venue reads the market in
        # execution's process, signal and risk in their own), or the venue runs ahead of a cancel. Then a
        # plan sends only a cancel, is planned again when the fill arrives, and converges, but on other
        # orders than the backtest's (split in two, or toward a newer target). Exact parity needs
        # execution to take targets and the venue's fills in market-time order (see bench/RESULTS.md).
        pytest.xfail("paper fills differ from the backtest's: the venue's fills reached execution late")


def backtest_and_paper(tmp_path: Path, replay: list[Path], config: Path, fills: list[ev.OrderFilled]
                       ) -> tuple[list[dict], list[dict]]:
    """`bosun backtest` of the same files and config: its fills, and the paper ones, as rows alike."""
    out = tmp_path / "backtest"
    done = subprocess.run(bosun_argv("backtest", *(a for path in replay for a in ("--data", str(path))),
                                     "--config", str(config), "--out", str(out)),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    with open(out / "fills.csv") as f:
        backtest = [row for row in csv.DictReader(f) if row["reason"] != "end_of_data"]  # paper keeps its position
    iso = IsoTime()
    paper = [{"time": iso(f.ts_event), "symbol": f.symbol, "side": f.side, "qty": f.qty, "price": f.price,
              "fee": f.fee, "reason": f.reason} for f in fills]
    expected = [{**row, "qty": Decimal(row["qty"]), "price": Decimal(row["price"]), "fee": Decimal(row["fee"])}
                for row in backtest]
    return expected, paper


def _by_fill(row: dict) -> tuple:
    return row["time"], row["side"], row["qty"], row["price"]
