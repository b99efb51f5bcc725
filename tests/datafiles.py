"""Where tests find the real market data: BOSUN_DATA_DIR, else ../shared/data beside the
repo. Absent data skips the test with the reason, except under CI, where it fails."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    return Path(os.environ.get("BOSUN_DATA_DIR") or REPO.parent / "shared" / "data")


def data_file(relpath: str) -> Path:
    """The path of a data file, or skip (fail under CI=true) naming what is missing."""
    path = data_dir() / relpath
    if not path.exists():
        _missing(f"market data file {path} is missing (set BOSUN_DATA_DIR to the shared data folder)")
    return path


def schema_file(name: str) -> Path:
    """A schema of ../shared/schemas beside the repo, or skip (fail under CI=true)."""
    path = REPO.parent / "shared" / "schemas" / name
    if not path.exists():
        _missing(f"schema {path} is missing (the shared folder beside the repository)")
    return path


def _missing(reason: str) -> None:
    import pytest  # here, so that benchmarks can use this module without the test tools

    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason)
    pytest.skip(reason)


BTC_1M = "binance_spot_klines_1m/binance_spot_BTCUSDT_1m_2024-10-01_2024-11-04.csv.gz"
ETH_1M = "binance_spot_klines_1m/binance_spot_ETHUSDT_1m_2024-10-01_2024-11-04.csv.gz"
LINK_USDM_12COL = "binance_usdm_klines_1m/binance_usdm_LINKUSDT-1m-2023-02.csv.gz"
XRPETH_AGGTRADES = "binance_misc/binance_spot_XRPETH_aggtrades_2019-10-11_2019-10-13.csv.gz"
XRPETH_1M = "binance_misc/binance_spot_XRPETH_1m_2019-10-11_2019-10-13.csv.gz"
BTC_WS_CAPTURE = "binance_ws_captures/binance_spot_BTCUSDT_ws_2024-08-08T2354Z_2024-08-09T0005Z.jsonl.gz"
BTC_TRADES = "binance_ws_captures/binance_spot_BTCUSDT_trades_2024-08-08T2354Z_2024-08-09T0005Z.csv.gz"
XRP_FUNDING = "binance_misc/binance_usdm_XRPUSDT_funding_rate_8h_2021-11-18_2021-12-18.csv"
XRP_MARK_8H = "binance_misc/binance_usdm_XRPUSDT_markprice_8h_2021-11-18_2021-12-18.csv"
BTC_USDM_WS_MARKPRICE = "binance_ws_captures/binance_usdm_BTCUSDT_ws_2023-04-05T0000Z_2023-04-05T0007Z.jsonl.gz"


def write_slice(src: Path, dst: Path, bars: int) -> Path:
    """The header and the first `bars` rows of a gzipped data file, as a plain CSV at `dst`."""
    with gzip.open(src, "rt") as f, open(dst, "w") as out:
        for _, line in zip(range(bars + 1), f):  # the header, then `bars` rows
            out.write(line)
    return dst
BTC_BOOK_TICKER = "binance_ws_captures/binance_spot_BTCUSDT_bookticker_2024-08-08T2354Z_2024-08-09T0005Z.csv.gz"
USDM_BTC_TRADES = "binance_ws_captures/binance_usdm_BTCUSDT_trades_2024-08-08T2354Z_2024-08-09T0000Z.csv.gz"
USDM_BTC_BOOK_TICKER = "binance_ws_captures/binance_usdm_BTCUSDT_bookticker_2024-08-08T2354Z_2024-08-09T0000Z.csv.gz"
USDM_BTC_WS_CAPTURE = "binance_ws_captures/binance_usdm_BTCUSDT_ws_2024-08-08T2354Z_2024-08-09T0000Z.jsonl.gz"
