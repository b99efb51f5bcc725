"""One TOML file, decoded by msgspec into frozen typed structs that reject unknown fields.

A wrong or missing field fails at start with the file, the field's path and what was
expected, e.g. `bosun.toml: Expected `int`, got `str` - at `$.clients[0].capital``.
Secrets never live here: they come from the environment (see `secret`)."""

from __future__ import annotations

import os
import re
import types
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import msgspec

from proto.subjects import check_token


class ConfigError(ValueError):
    pass


class _Config(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class SizingConfig(_Config):
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


class RiskConfig(_Config):
    """Hard limits per client. A limit left unset does not apply."""

    max_position: Decimal | None = None  # |base qty| per symbol
    max_position_per_symbol: dict[str, Decimal] = {}
    max_order_notional: Decimal | None = None  # quote currency, per order
    max_price_age_s: float | None = 300.0  # refuse to trade on a price older than this


class VenueConfig(_Config):
    """Where a client's orders go. `shadow` fills internally against real prices."""

    kind: Literal["shadow", "live"] = "shadow"
    exchange: str = "binance"  # ccxt id, for kind = "live"
    fee_bps: Decimal = Decimal(10)
    slippage_bps: Decimal = Decimal(0)
    fill: Literal["next_open", "close"] = "next_open"
    tick_size: Decimal = Decimal("0.01")
    step_size: Decimal = Decimal("0.00001")


class ClientConfig(_Config):
    id: str
    capital: Decimal = Decimal(10000)
    strategies: list[str] = []
    sizing: SizingConfig = SizingConfig()
    risk: RiskConfig = RiskConfig()
    venues: dict[str, VenueConfig] = msgspec.field(default_factory=lambda: {"binance": VenueConfig()})

    def __post_init__(self) -> None:
        check_token(self.id, "client id")
        for venue in self.venues:
            check_token(venue, "venue")


class StrategyConfig(_Config):
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


class IngestConfig(_Config):
    venue: str = "binance"
    symbols: list[str] = msgspec.field(default_factory=lambda: ["BTCUSDT"])
    interval: str = "1m"
    ws_url: str = "wss://stream.binance.com:9443"
    streams: list[Literal["kline", "trade"]] = msgspec.field(default_factory=lambda: ["kline", "trade"])
    replay: list[str] = []  # kline/trade files; when set, replay them instead of the websocket
    speed: float = 0.0  # replay speed as a multiple of real time; 0 = as fast as possible
    max_reconnect_delay_s: float = 30.0
    max_reconnect_attempts: int = 20  # in a row without a message; then ingest stops and says so

    def __post_init__(self) -> None:
        for symbol in self.symbols:
            check_token(symbol, "symbol")
        if self.speed < 0:
            raise ValueError("ingest.speed must be >= 0 (0 = as fast as possible)")


class WebhookConfig(_Config):
    kind: Literal["discord", "slack"]
    url_env: str  # the environment variable that holds the URL: webhook URLs are secrets


class AlertsConfig(_Config):
    webhooks: list[WebhookConfig] = []
    timeout_s: float = 5.0
    max_attempts: int = 3
    max_per_minute: int = 20
    dedup_window_s: float = 300.0
    max_queue: int = 1000


class ServiceConfig(_Config):
    metrics_port: int = 0  # 0: a free port, printed at start


class Config(_Config):
    mode: Literal["backtest", "paper", "shadow", "live"] = "shadow"
    dry_run: bool = False
    state_dir: str = ".bosun"
    clients: list[ClientConfig] = msgspec.field(
        default_factory=lambda: [ClientConfig(id="demo", strategies=["sma_btc"])])
    strategies: list[StrategyConfig] = msgspec.field(
        default_factory=lambda: [StrategyConfig(name="sma_btc", params={"fast": 10, "slow": 30})])
    ingest: IngestConfig = IngestConfig()
    alerts: AlertsConfig = AlertsConfig()
    services: dict[str, ServiceConfig] = {}

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
    """TOML; JSON when `source` ends in .json (the effective config `bosun up` hands its children)."""
    decode = msgspec.json.decode if source.endswith(".json") else msgspec.toml.decode
    try:
        return decode(data, type=Config)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        message = str(exc)
        if message.startswith("Invalid enum value") and " - at `" in message:
            choices = _choices_at(message.rsplit(" - at `", 1)[1].rstrip("`"))
            message += f" (expected one of: {', '.join(map(repr, choices))})" if choices else ""
        raise ConfigError(f"{source}: {message}") from None


def _choices_at(path: str) -> tuple[str, ...]:
    """The allowed values of the Literal field at a msgspec error path like `$.clients[0].venues[...].kind`."""
    kind: Any = Config
    for token in re.findall(r"\.(\w+)|\[[^\]]*\]", path):
        while get_origin(kind) in (Union, types.UnionType):
            kind = next(a for a in get_args(kind) if a is not type(None))
        if token:  # a field of a struct
            kind = get_type_hints(kind).get(token)
        elif get_origin(kind) in (list, dict):  # an item of a list or a value of a table
            kind = get_args(kind)[-1]
    return get_args(kind) if get_origin(kind) is Literal else ()


def secret(name: str) -> str:
    """A secret from the environment, or a clear error naming the variable."""
    value = os.environ.get(name)
    if not value:
        raise ConfigError(f"environment variable {name} is not set (secrets come only from the environment)")
    return value
