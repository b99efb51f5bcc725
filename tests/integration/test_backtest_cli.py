"""`python -m bosun.apps.backtest_cli` end to end on real data: the output files, --json,
trade files turned into bars, and exit code 2 with a message naming the file and line or
the parameter for bad input."""

from __future__ import annotations

import csv
import gzip
import itertools
import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from bosun.apps import backtest_cli
from bosun.apps.outputs import FILLS_COLUMNS, TRADES_COLUMNS
from tests.datafiles import BTC_1M, REPO, XRPETH_1M, XRPETH_AGGTRADES, data_file

METRICS = {
    "total_pnl", "total_return_pct", "cagr_pct", "num_trades", "win_rate", "win_rate_long", "win_rate_short",
    "avg_win", "avg_loss", "largest_win", "largest_loss", "profit_factor", "expectancy", "sharpe", "sortino",
    "calmar", "max_drawdown", "max_drawdown_pct", "max_drawdown_duration_s", "exposure_pct", "avg_holding_s",
    "max_consecutive_wins", "max_consecutive_losses", "total_fees", "turnover"}
SMA = ["--strategy", "sma_cross", "--param", "fast=10", "--param", "slow=30"]


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bosun.apps.backtest_cli", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def run_main(*args: str | Path) -> int:
    return backtest_cli.main(backtest_cli.build_parser().parse_args(list(map(str, args))))


@pytest.fixture(scope="module")
def btc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = data_file(BTC_1M)
    dst = tmp_path_factory.mktemp("data") / src.name.removesuffix(".gz")
    with gzip.open(src, "rt") as f, dst.open("w") as out:
        out.writelines(itertools.islice(f, 5001))
    return dst


def test_writes_every_output_and_prints_metrics_json(btc: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = cli("--data", btc, "--out", out, *SMA, "--qty", "0.01", "--fee-bps", "10", "--slippage-bps", "1",
               "--fill", "next_open", "--json")
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout, parse_float=Decimal)
    assert METRICS <= printed.keys()
    assert printed == json.loads((out / "metrics.json").read_text(), parse_float=Decimal)
    with (out / "trades.csv").open() as f:
        trades = list(csv.DictReader(f))
    assert list(trades[0]) == list(TRADES_COLUMNS)
    assert printed["num_trades"] == len(trades) > 0
    assert printed["total_pnl"] == sum(Decimal(t["pnl"]) for t in trades)
    with (out / "fills.csv").open() as f:
        assert next(csv.reader(f)) == list(FILLS_COLUMNS)
    with (out / "equity.csv").open() as f:
        assert sum(1 for _ in f) == 5001
    page = (out / "report.html").read_text()
    assert "<svg" in page and "<script" not in page and "http://" not in page.replace(
        'xmlns="http://www.w3.org/2000/svg"', "")
    assert trades[-1]["entry_time"] in page


def test_long_only_and_equity_fraction_flags(btc: Path, tmp_path: Path) -> None:
    assert run_main("--data", btc, "--out", tmp_path, *SMA, "--long-only", "--equity-fraction", "0.5",
                    "--capital", "5000", "--fill", "close") == 0
    with (tmp_path / "trades.csv").open() as f:
        trades = list(csv.DictReader(f))
    assert trades and {t["side"] for t in trades} == {"long"}
    with (tmp_path / "equity.csv").open() as f:
        next(f)
        assert Decimal(next(f).split(",")[1]) == 5000


def test_bars_built_from_trades_trade_like_the_kline_file(tmp_path: Path) -> None:
    """The XRPETH 1m klines are exactly the aggTrades aggregated: the same fills follow."""
    args = ["--param", "fast=5", "--param", "slow=20", "--qty", "100", "--fee-bps", "10"]
    assert run_main("--data", data_file(XRPETH_AGGTRADES), "--out", tmp_path / "trades", *args) == 0
    assert run_main("--data", data_file(XRPETH_1M), "--out", tmp_path / "klines", *args) == 0
    def fills(run: str) -> list[list[str | Decimal]]:
        with (tmp_path / run / "fills.csv").open() as f:
            return [[Decimal(v) if i in (3, 4, 5) else v for i, v in enumerate(row)] for row in list(csv.reader(f))[1:]]

    assert len(fills("trades")) > 20
    assert fills("trades") == fills("klines")


def test_config_file_runs_its_clients_and_strategies(btc: Path, tmp_path: Path) -> None:
    config = tmp_path / "bosun.toml"
    config.write_text("""
mode = "live"  # a live desk's own file: the backtest trades it on the shadow venue
dry_run = true  # a backtest sends nothing anyway: it trades on the shadow venue regardless

[[clients]]
id = "desk"
capital = 20000
strategies = ["fast_btc"]
sizing = { kind = "fixed", qty = 0.02 }
risk = { max_price_age_s = 120 }
venues = { binance = { kind = "live", fee_bps = 5 } }

[[strategies]]
name = "fast_btc"
symbol = "BTCUSDT"
params = { fast = 5, slow = 20 }
""")
    assert run_main("--data", btc, "--out", tmp_path / "out", "--config", config) == 0
    with (tmp_path / "out" / "fills.csv").open() as f:
        fills = list(csv.DictReader(f))
    assert fills and {f["qty"] for f in fills} <= {"0.02", "0.04"}
    assert Decimal(fills[0]["fee"]) == Decimal(fills[0]["qty"]) * Decimal(fills[0]["price"]) * Decimal("0.0005")


class HoldLong:
    """A strategy named by import path: long from the `after`-th bar to the end."""

    def __init__(self, after: int) -> None:
        self.after, self.seen = after, 0

    def on_bar(self, bar: object) -> int | None:
        self.seen += 1
        return 1 if self.seen >= self.after else None


def test_strategy_by_import_path_and_end_of_data_close(btc: Path, tmp_path: Path) -> None:
    done = cli("--data", btc, "--out", tmp_path, "--strategy", f"{__name__}:HoldLong", "--param", "after=100",
               "--qty", "0.5", "--fee-bps", "0", "--fill", "close", "--json")
    assert done.returncode == 0, done.stderr
    with (tmp_path / "trades.csv").open() as f:
        [trade] = list(csv.DictReader(f))
    assert (trade["side"], trade["exit_reason"], trade["qty"]) == ("long", "end_of_data", "0.5")
    with gzip.open(data_file(BTC_1M), "rt") as f:
        rows = list(csv.DictReader(itertools.islice(f, 5001)))
    assert Decimal(trade["entry_price"]) == Decimal(rows[99]["close"])  # decided and filled at the 100th close
    assert Decimal(trade["exit_price"]) == Decimal(rows[-1]["close"])
    expected = (Decimal(rows[-1]["close"]) - Decimal(rows[99]["close"])) * Decimal("0.5")
    assert json.loads(done.stdout, parse_float=Decimal)["total_pnl"] == Decimal(trade["pnl"]) == expected


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("open_time,open,high,low,close,volume\n" + "".join(line + "\n" for line in lines))
    return path


ROWS = ["1727751600000,1,2,0.5,1.5,10", "1727751660000,1.5,2,1,1.2,10", "1727751720000,1.2,1.4,1,1.3,10"]


@pytest.mark.parametrize(("lines", "message"), [
    ([ROWS[0], "1727751660000,1.5,oops,1,1.2,10", ROWS[2]], ":3: high 'oops' is not a number"),
    ([ROWS[0], ROWS[2], ROWS[1]], ":4: open_time 1727751660000 is before"),
    ([ROWS[0], ROWS[1], ROWS[1]], ":4: open_time 1727751660000 repeats"),
    ([ROWS[0], "1727751660000,1.5,2", ROWS[2]], ":3: 3 columns, expected 6"),
], ids=["malformed", "unsorted", "duplicate", "short-row"])
def test_bad_data_exits_2_naming_file_and_line(tmp_path: Path, lines: list[str], message: str) -> None:
    path = write_lines(tmp_path / "BTCUSDT_1m.csv", lines)
    done = cli("--data", path, "--out", tmp_path / "out", *SMA)
    assert done.returncode == 2
    assert f"{path}{message}" in done.stderr
    assert "Traceback" not in done.stderr


def test_unreadable_file_exits_2(tmp_path: Path) -> None:
    missing = tmp_path / "BTCUSDT_1m.csv"
    done = cli("--data", missing, "--out", tmp_path / "out", *SMA)
    assert done.returncode == 2 and str(missing) in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--strategy", "nope"], "unknown strategy 'nope'"),
    (["--strategy", "no_such_module:Thing"], "cannot import module 'no_such_module'"),
    (["--param", "fast=10", "--param", "slow=30", "--param", "sloww=3"], "no parameter 'sloww'"),
    (["--param", "fast=ten", "--param", "slow=30"], "parameter 'fast' must be int"),
    (["--param", "fast=10"], "needs parameter(s) 'slow'"),
    (["--param", "fast=30", "--param", "slow=10"], "'fast' (30) must be smaller than 'slow' (10)"),
], ids=["unknown-strategy", "bad-import-path", "unknown-param", "wrong-type", "missing-param", "fast>=slow"])
def test_bad_strategy_exits_2_naming_the_parameter(btc: Path, tmp_path: Path, args: list[str],
                                                     message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_main("--data", btc, "--out", tmp_path, *args) == 2
    assert message in capsys.readouterr().err


def test_bad_flags_exit_2(btc: Path, tmp_path: Path) -> None:
    done = cli("--data", btc, "--out", tmp_path, "--param", "fast")
    assert done.returncode == 2 and "'fast' is not name=value" in done.stderr
    done = cli("--data", btc, "--out", tmp_path, "--qty", "abc")
    assert done.returncode == 2 and "'abc' is not a number" in done.stderr
    done = cli("--data", btc, "--out", tmp_path, "--qty", "1", "--equity-fraction", "0.5")
    assert done.returncode == 2 and "not allowed with argument" in done.stderr
    done = cli("--data", btc, "--out", tmp_path, *SMA, "--capital", "-5")
    assert done.returncode == 2 and "--capital must be > 0, got -5" in done.stderr
    config = tmp_path / "bosun.toml"
    config.write_text("")
    done = cli("--data", btc, "--out", tmp_path, "--config", config, "--fee-bps", "5")
    assert done.returncode == 2 and "drop --fee-bps" in done.stderr
