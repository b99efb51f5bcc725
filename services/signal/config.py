"""The signal service's configuration: strategies, and each following client's sizing."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from bosun.runtime.config import ConfigStruct
from proto.subjects import check_token


class SizingConfig(ConfigStruct):
    """How a signal's direction becomes a position: a fixed base quantity, or a fraction
    of the client's equity divided by the price."""

    kind: Literal["fixed", "equity_fraction"] = "fixed"
    qty: Decimal = Decimal("0.01")
    fraction: Decimal = Decimal("0.1")

    def __post_init__(self) -> None:
        if self.qty <= 0:
            raise ValueError("sizing.qty must be > 0")
        if not Decimal(0) < self.fraction <= Decimal(10):
            raise ValueError("sizing.fraction must be in (0, 10]")


class StrategyConfig(ConfigStruct):
    name: str
    kind: str = "sma_cross"  # a registered name, or `package.module:Class`
    venue: str = "binance"
    symbol: str = "BTCUSDT"
    params: dict[str, int | float | str] = {}
    long_only: bool = False
    stop_k: Decimal | None = None  # stop-loss at k standard deviations of recent returns
    take_k: Decimal | None = None
    returns_window: int = 30

    def __post_init__(self) -> None:
        check_token(self.name, "strategy name")
        check_token(self.venue, "venue")
        check_token(self.symbol, "symbol")


class Grid(ConfigStruct):
    """A venue's tick and step sizes: where sized quantities and protective prices round to."""

    tick_size: Decimal
    step_size: Decimal


class Follower(ConfigStruct):
    """A client as signal sees it: its capital, the strategies it follows, how it sizes, and
    the grid of each venue it trades on (a strategy on a venue it lacks is skipped)."""

    id: str
    capital: Decimal
    strategies: list[str]
    sizing: SizingConfig
    grids: dict[str, Grid]


class SignalConfig(ConfigStruct):
    strategies: list[StrategyConfig]
    clients: list[Follower]
