"""The one TOML file a person writes, assembled from the structs each service declares.

This is the composition root's view: it knows every service's config and hands each actor
only its slice (`signal_config()`, `risk_config()`, ...), so adding a limit touches only
services/risk/. A wrong or missing field fails at start with the file, the field's path
and what was expected. Secrets never live here: they come from the environment."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Literal

import msgspec

from bosun.runtime.config import ConfigError, ConfigStruct, decode
from proto.subjects import check_token
from services.alerts.config import AlertsConfig
from services.execution.config import ExecutionConfig, GuardConfig, LiveCaps, VenueConfig
from services.ingest.config import IngestConfig
from services.portfolio.config import LedgerConfig, PortfolioConfig
from services.risk.config import LimitsConfig, RiskConfig
from services.signal.config import Follower, Grid, LevelsConfig, SignalConfig, SizingConfig, StrategyConfig


class ClientConfig(ConfigStruct):
    id: str
    capital: Decimal = Decimal(10000)
    strategies: list[str] = []
    sizing: SizingConfig = SizingConfig()
    risk: LimitsConfig = LimitsConfig()
    venues: dict[str, VenueConfig] = msgspec.field(default_factory=lambda: {"binance": VenueConfig()})
    levels: LevelsConfig | None = None  # stop-loss / take-profit levels in place of its strategies', leg by leg

    def __post_init__(self) -> None:
        check_token(self.id, "client id")
        for venue in self.venues:
            check_token(venue, "venue")


# The demo client's caps, so a first run shows risk at work: against its fixed 0.01 BTC a position
# of 5 signals, an order of ~5 signals' worth at today's prices, and a target sized 5% off the market.
DEMO_LIMITS = LimitsConfig(max_position=Decimal("0.05"), max_order_notional=Decimal("5000"),
                           price_band_pct=Decimal("5"))


# Every service of the platform, market data first (the order `bosun up` stops them in).
SERVICES = ("ingest", "signal", "risk", "execution", "portfolio", "alerts")


class ServiceConfig(ConfigStruct):
    metrics_port: int = 0  # 0: a free port, printed at start
    metrics_addr: str = "127.0.0.1"  # a container opens it ("0.0.0.0") to its network's Prometheus
    # Entries of a replayed stream between two snapshots of what the service rebuilds from it
    # (execution: ORDERS): a start replays about this many after the newest snapshot.
    snapshot_every: int = 1_000

    def __post_init__(self) -> None:
        if not 0 <= self.metrics_port <= 65535:
            raise ValueError(f"metrics_port {self.metrics_port} is not a TCP port (0 to 65535)")
        if not 1 <= self.snapshot_every <= 10_000_000:
            raise ValueError(f"snapshot_every {self.snapshot_every} is not a number of entries from 1 to 10,000,000")


class Config(ConfigStruct):
    mode: Literal["backtest", "paper", "shadow", "live"] = "shadow"
    dry_run: bool = False
    state_dir: str = ".bosun"
    clients: list[ClientConfig] = msgspec.field(
        default_factory=lambda: [ClientConfig(id="demo", strategies=["sma_btc"], risk=DEMO_LIMITS)])
    strategies: list[StrategyConfig] = msgspec.field(
        default_factory=lambda: [StrategyConfig(name="sma_btc", params={"fast": 10, "slow": 30})])
    risk: LimitsConfig = LimitsConfig()  # every client's risk limits, where its own `[clients.risk]` leaves one unset
    ingest: IngestConfig = IngestConfig()
    alerts: AlertsConfig = AlertsConfig()
    portfolio: LedgerConfig = LedgerConfig()
    services: dict[str, ServiceConfig] = {}
    live: LiveCaps = LiveCaps()  # `[live] capped = true`: capped-live mode, with its caps

    def __post_init__(self) -> None:
        strategies = {s.name: s for s in self.strategies}
        for client in self.clients:
            markets: dict[tuple[str, str], str] = {}
            for name in client.strategies:
                if name not in strategies:
                    raise ValueError(f"client {client.id!r} names strategy {name!r}, "
                                     f"which is not among [[strategies]] ({', '.join(sorted(strategies))})")
                market = (strategies[name].venue, strategies[name].symbol)
                if market in markets:  # targets are absolute positions: the last one would win
                    raise ValueError(f"client {client.id!r} follows {markets[market]!r} and {name!r} on the same "
                                     f"{'.'.join(market)}; their targets would overwrite each other")
                markets[market] = name
            live = sorted(venue for venue, v in client.venues.items() if v.kind == "live")
            if live and self.mode != "live":
                raise ValueError(f"client {client.id!r} has live venue {live[0]!r} but mode is {self.mode!r}: "
                                 f"real orders need mode = \"live\"")

    # --- each service's slice

    def signal_config(self) -> SignalConfig:
        return SignalConfig(strategies=self.strategies, clients=[
            Follower(id=c.id, capital=c.capital, strategies=c.strategies, sizing=c.sizing,
                     grids={name: Grid(tick_size=v.tick_size, step_size=v.step_size) for name, v in c.venues.items()},
                     levels=c.levels)
            for c in self.clients])

    def risk_config(self) -> RiskConfig:
        return RiskConfig(clients={c.id: c.risk for c in self.clients}, defaults=self.risk,
                          capital={c.id: c.capital for c in self.clients})

    def execution_config(self, guarded: bool = False) -> ExecutionConfig:
        """`guarded`: with the last-line guard's caps, risk's own (a service process; a backtest runs
        risk in the same process and goes without)."""
        guard = {}
        if guarded:
            risk = self.risk_config()
            for client in risk.clients:
                limits = risk.limits_of(client)
                guard[client] = GuardConfig(
                    max_order_notional=limits.max_order_notional, max_orders_per_s=limits.max_orders_per_s,
                    max_orders_per_min=limits.max_orders_per_min, price_band_pct=limits.price_band_pct)
        return ExecutionConfig(dry_run=self.dry_run, venues={c.id: c.venues for c in self.clients}, guard=guard,
                               live=self.live)

    def portfolio_config(self) -> PortfolioConfig:
        return PortfolioConfig(capital={c.id: c.capital for c in self.clients}, ledger=self.portfolio)

    def service(self, name: str) -> ServiceConfig:
        return self.services.get(name, ServiceConfig())


def load(path: str | Path | None) -> Config:
    """Read and check a config file; None gives the defaults."""
    if path is None:
        return Config()
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from None
    return parse(data, str(path))


def parse(data: bytes | str, source: str = "<config>") -> Config:
    return decode(data, Config, source)
