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


class LevelsConfig(ConfigStruct):
    """Where a position's stop-loss and take-profit go, from the price the signal came at: `*_sd`
    standard deviations of the recent returns (over the strategy's `returns_window`), or `*_pct`
    percent of the price; at most one of each pair. A client's `levels` replace its strategies' own,
    field by field."""

    stop_loss_sd: Decimal | None = None
    take_profit_sd: Decimal | None = None
    stop_loss_pct: Decimal | None = None
    take_profit_pct: Decimal | None = None

    def __post_init__(self) -> None:
        for leg in ("stop_loss", "take_profit"):
            sd, pct = getattr(self, f"{leg}_sd"), getattr(self, f"{leg}_pct")
            if sd is not None and pct is not None:
                raise ValueError(f"{leg}_sd and {leg}_pct both set ({sd}, {pct}): give one")
            for name, value in ((f"{leg}_sd", sd), (f"{leg}_pct", pct)):
                if value is not None and not (value.is_finite() and value > 0):
                    raise ValueError(f"{name} must be a finite number > 0, got {value}")
        if self.stop_loss_pct is not None and self.stop_loss_pct >= 100:
            raise ValueError(f"stop_loss_pct must be < 100, got {self.stop_loss_pct}")

    def over(self, base: LevelsConfig) -> LevelsConfig:
        """These levels, each leg unset here taken from `base`."""
        picked = {}
        for leg in ("stop_loss", "take_profit"):
            own = getattr(self, f"{leg}_sd") is not None or getattr(self, f"{leg}_pct") is not None
            source = self if own else base
            picked[f"{leg}_sd"], picked[f"{leg}_pct"] = getattr(source, f"{leg}_sd"), getattr(source, f"{leg}_pct")
        return LevelsConfig(**picked)

    @property
    def uses_sd(self) -> bool:
        return self.stop_loss_sd is not None or self.take_profit_sd is not None


class StrategyConfig(ConfigStruct):
    name: str
    kind: str = "sma_cross"  # a registered name, or `package.module:Class`
    venue: str = "binance"
    symbol: str = "BTCUSDT"
    params: dict[str, int | float | str] = {}
    long_only: bool = False
    stop_k: Decimal | None = None  # stop-loss at k standard deviations of recent returns (= levels.stop_loss_sd)
    take_k: Decimal | None = None  # (= levels.take_profit_sd)
    returns_window: int = 30
    levels: LevelsConfig = LevelsConfig()  # stop-loss / take-profit in sd or percent (stop_k, take_k: sd)

    def __post_init__(self) -> None:
        check_token(self.name, "strategy name")
        check_token(self.venue, "venue")
        check_token(self.symbol, "symbol")
        if (self.stop_k is not None and (self.levels.stop_loss_sd, self.levels.stop_loss_pct) != (None, None)) or (
                self.take_k is not None and (self.levels.take_profit_sd, self.levels.take_profit_pct) != (None, None)):
            raise ValueError(f"strategy {self.name!r}: stop_k/take_k are levels.stop_loss_sd/take_profit_sd; "
                             f"set each leg once")

    def own_levels(self) -> LevelsConfig:
        """The strategy's levels, stop_k and take_k included."""
        return LevelsConfig(stop_loss_sd=self.stop_k, take_profit_sd=self.take_k).over(self.levels) \
            if self.stop_k is not None or self.take_k is not None else self.levels


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
    levels: LevelsConfig | None = None  # replaces its strategies' stop-loss / take-profit levels, leg by leg


class SignalConfig(ConfigStruct):
    strategies: list[StrategyConfig]
    clients: list[Follower]
