"""The execution service's configuration: where each client's orders go."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from bosun.runtime.config import ConfigStruct

BPS = Decimal(10_000)


class VenueConfig(ConfigStruct):
    """Where a client's orders go. `shadow` fills internally against real prices."""

    kind: Literal["shadow", "live"] = "shadow"
    exchange: str = "binance"  # ccxt id, for kind = "live": binance or bybit, spot (venues/dialects.py)
    # kind = "live": every REST endpoint of the exchange on this base URL, paths kept (a testnet,
    # or `bosun exchange-sim`); the market rules (tick, step, minimums) then come from the exchange.
    api_url: str | None = None
    poll_s: float = 1.0  # how often the exchange's trades are read for fills while the user stream is down
    # kind = "live", order requests (places and cancels, retries included): at most order_budget in any
    # order_budget_window_s (Binance spot: 50 per 10 s), and a place on a market not sooner than
    # min_replace_interval_s after a cancel there.
    order_budget: int = 50
    order_budget_window_s: float = 10.0
    min_replace_interval_s: float = 0.5
    user_stream: bool = True  # kind = "live": fills from ccxt.pro's watch_my_trades, polling only while it is down
    stream_poll_s: float = 30.0  # while the user stream is up, fills are read this often all the same: a safety net
    # A position found on start with protective levels but no working stop (cancelled by hand, or
    # lost while execution was down): place the stop again, close the position at market, or turn
    # trading off for a person to decide. Trading stays off after a restart whichever it is.
    on_unprotected: Literal["rearm", "flatten", "halt"] = "rearm"
    fee_bps: Decimal = Decimal(10)
    maker_fee_bps: Decimal | None = None  # a limit order's fills; fee_bps when not set
    taker_fee_bps: Decimal | None = None  # market, stop and take-profit fills; fee_bps when not set
    slippage_bps: Decimal = Decimal(0)
    fill: Literal["next_open", "close"] = "next_open"
    # simple: an order fills whole on the event that qualifies. book: each event fills at most what
    # traded there, `bar_volume_share` of a bar's volume or a trade's own size; the rest stays working.
    fill_model: Literal["simple", "book"] = "simple"
    bar_volume_share: Decimal = Decimal("0.1")
    # book model on quotes: the queue ahead of a limit order placed behind the best bid/ask, as a share
    # of the size displayed at the best (the depth there is not seen); see venues/queue.py
    queue_share: Decimal = Decimal(1)
    submit_latency_ms: Decimal = Decimal(0)  # an order may fill only on market data from then on
    cancel_latency_ms: Decimal = Decimal(0)  # a cancel (modify, cancel-all) takes effect then: it can lose to a fill
    latency_jitter_ms: Decimal = Decimal(0)  # up to this much more, drawn from the command's id (repeatable)
    # How execution trades toward a target of reason `signal`: market orders, or limit orders resting at
    # the target's reference price less (buy) / plus (sell) `limit_offset_bps`, good for `limit_ttl_s`
    # (time in force GTD) when set, else until cancelled or superseded.
    entry: Literal["market", "limit"] = "market"
    limit_offset_bps: Decimal = Decimal(0)
    limit_ttl_s: Decimal | None = None
    tick_size: Decimal = Decimal("0.01")
    step_size: Decimal = Decimal("0.00001")

    def __post_init__(self) -> None:
        for name in ("maker_fee_bps", "taker_fee_bps"):  # may be negative: a maker rebate
            if getattr(self, name) is not None:
                _finite(name, getattr(self, name))
        for name in ("submit_latency_ms", "cancel_latency_ms", "latency_jitter_ms"):
            if _finite(name, getattr(self, name)) < 0:
                raise ValueError(f"venue {name} must be >= 0, got {getattr(self, name)}")
        if not 0 < _finite("bar_volume_share", self.bar_volume_share) <= 1:
            raise ValueError(f"venue bar_volume_share must be in (0, 1], got {self.bar_volume_share}")
        for name in ("poll_s", "stream_poll_s"):
            if not 0 < _finite(name, Decimal(getattr(self, name))):
                raise ValueError(f"venue {name} must be > 0, got {getattr(self, name)}")
        if not 1 <= self.order_budget <= 100_000:
            raise ValueError(f"venue order_budget must be between 1 and 100000, got {self.order_budget}")
        if not 0 < _finite("order_budget_window_s", Decimal(self.order_budget_window_s)) <= 86_400:
            raise ValueError(f"venue order_budget_window_s must be in (0, 86400], got {self.order_budget_window_s}")
        if not 0 <= _finite("min_replace_interval_s", Decimal(self.min_replace_interval_s)) <= 60:
            raise ValueError(f"venue min_replace_interval_s must be in [0, 60], got {self.min_replace_interval_s}")
        if not 0 <= _finite("limit_offset_bps", self.limit_offset_bps) < BPS:
            raise ValueError(f"venue limit_offset_bps must be in [0, 10000), got {self.limit_offset_bps}")
        if self.limit_ttl_s is not None and not _finite("limit_ttl_s", self.limit_ttl_s) > 0:
            raise ValueError(f"venue limit_ttl_s must be > 0, got {self.limit_ttl_s}")
        if _finite("queue_share", self.queue_share) < 0:
            raise ValueError(f"venue queue_share must be >= 0, got {self.queue_share}")


def _finite(name: str, value: Decimal) -> Decimal:
    if not value.is_finite():
        raise ValueError(f"{'' if name.startswith('live.') else 'venue '}{name} must be a finite number, got {value}")
    return value


class LiveCaps(ConfigStruct):
    """`[live]`: capped-live mode. With `capped = true`, execution itself refuses any order to a
    live venue above these caps, whatever risk approved (services/execution/caps.py)."""

    capped: bool = False
    max_order_notional: Decimal | None = None  # quote currency: qty x (limit, else the newest) price
    max_position: Decimal | None = None  # base units, per client and market, counting working orders

    def __post_init__(self) -> None:
        if not self.capped:
            return
        for name in ("max_order_notional", "max_position"):
            value = getattr(self, name)
            if value is None:
                raise ValueError(f"live.capped = true needs live.{name}: a capped mode names its caps")
            if not _finite(f"live.{name}", value) > 0:
                raise ValueError(f"live.{name} must be > 0, got {value}")

    def banner(self) -> str:
        return (f"CAPPED LIVE: every order to a live venue at most {self.max_order_notional} in notional, "
                f"positions at most {self.max_position}")
class GuardConfig(ConfigStruct):
    """The caps execution re-checks before each order, taken from the same `[risk]` config as
    risk's (the composition root copies them): each None does not apply."""

    max_order_notional: Decimal | None = None
    max_orders_per_s: int | None = None
    max_orders_per_min: int | None = None
    price_band_pct: Decimal | None = None


class ExecutionConfig(ConfigStruct):
    venues: dict[str, dict[str, VenueConfig]]  # client id -> venue name -> its config
    dry_run: bool = False
    live: LiveCaps = LiveCaps()
    # client id -> the caps of its last-line guard; none given: execution re-checks only the
    # kill switch and the trading states (a backtest, where risk runs in the same process)
    guard: dict[str, GuardConfig] = {}
