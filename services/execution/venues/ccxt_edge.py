"""The live venues' edge: ccxt's async API, and the only place that holds exchange keys.

It carries out the LiveAdapter's effects and answers with the Order* events the exchange
gives, and reads each account's trades for fills. What it guarantees:
- an order goes out with its client order id (`newClientOrderId`), rounded to the exchange's
  own market rules first; an order those rules refuse is rejected here, naming the rule;
- a network failure (ccxt's NetworkError family: RequestTimeout, DDoSProtection and its
  RateLimitExceeded, ExchangeNotAvailable) is retried at most MAX_ATTEMPTS times with jittered
  exponential backoff, and before each retry the order is looked up by its client order id,
  so a request whose answer was lost is never placed twice; "duplicate order" means the same;
- anything else the exchange refuses (InvalidOrder, InsufficientFunds, AuthenticationError,
  ...) becomes OrderRejected with the exchange's reason, keys scrubbed from it;
- a cancel that finds no order (it raced a fill) is resolved by fetching the order.
Protective orders (stop_market / take_profit_market) are not placed on live venues yet: they
are rejected with that reason."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import ccxt.async_support as ccxt_async
from ccxt.base import errors as ccxt_errors

from proto.events import Event, OrderAccepted, OrderCanceled, OrderFilled, SubmitOrder
from services.execution.config import ExecutionConfig, VenueConfig
from services.execution.orders import rejection
from services.execution.venues.live import CancelAllVenueOrders, CancelVenueOrder, PlaceOrder

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
BACKOFF_S, MAX_BACKOFF_S = 0.2, 5.0
TRADES_PER_POLL = 500  # per symbol and poll: a bound, the next poll goes on from the newest
ORDERS_REMEMBERED = 100_000  # per account: the exchange's order ids whose fills are named by our ids
# Spot only: without these, ccxt's binance also asks for futures, margin and currency data.
BINANCE_OPTIONS = {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False, "fetchMargins": False,
                   "fetchOpenOrders": {"warnWithoutSymbol": False}}


def credentials(exchange: str, environ: Mapping[str, str]) -> dict[str, str]:
    """ccxt's apiKey / secret / password from BOSUN_<EXCHANGE>_API_{KEY,SECRET,PASSWORD}."""
    prefix = f"BOSUN_{exchange.upper()}_API_"
    names = {"apiKey": "KEY", "secret": "SECRET", "password": "PASSWORD"}
    return {field: environ[prefix + name] for field, name in names.items() if prefix + name in environ}


def point_at(exchange: Any, base_url: str) -> Any:
    """Every REST endpoint of `exchange` on `base_url`, paths kept (a testnet, or `bosun
    exchange-sim`); for ccxt.pro also the spot streams: `/ws` (listen key) and `/ws-api/v3`."""
    base_url = base_url.rstrip("/")
    api = exchange.urls["api"]
    for name, url in list(api.items()):
        if isinstance(url, str):
            api[name] = base_url + urlsplit(url).path
    ws_base = "ws" + base_url.removeprefix("http")
    if isinstance(api.get("ws"), dict):
        ws_api = {**api["ws"].get("ws-api", {}), "spot": ws_base + "/ws-api/v3"}
        api["ws"] = {**api["ws"], "spot": ws_base + "/ws", "ws-api": ws_api}
    return exchange


class _Account:
    def __init__(self, client: str, venue: str, cfg: VenueConfig, environ: Mapping[str, str]) -> None:
        self.client, self.venue, self.cfg = client, venue, cfg
        keys = credentials(cfg.exchange, environ)
        self._secrets = [v for v in keys.values() if v]
        options = dict(BINANCE_OPTIONS) if cfg.exchange == "binance" else {}
        self.exchange = getattr(ccxt_async, cfg.exchange)({**keys, "enableRateLimit": True, "options": options})
        if cfg.api_url:
            point_at(self.exchange, cfg.api_url)
        self.coids: dict[str, str] = {}  # the exchange's order id -> our client order id, oldest first
        self.since_ms: dict[str, int] = {}  # symbol -> newest trade time read, for the next poll

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    async def symbol(self, market_id: str) -> str:
        """ccxt's unified symbol ('BTC/USDT') for the exchange's id ('BTCUSDT')."""
        if not self.exchange.markets:
            await patiently(self.exchange.load_markets)
        found = self.exchange.markets_by_id.get(market_id)
        if not found:
            raise KeyError(market_id)
        return found[0]["symbol"]


class CcxtEdge:
    def __init__(self, config: ExecutionConfig, environ: Mapping[str, str] = os.environ) -> None:
        self.accounts = {(client, venue): _Account(client, venue, cfg, environ)
                         for client, venues in config.venues.items() for venue, cfg in venues.items()
                         if cfg.kind == "live"}

    async def close(self) -> None:
        await asyncio.gather(*(a.exchange.close() for a in self.accounts.values()), return_exceptions=True)

    async def carry_out(self, effects: Sequence[Any]) -> list[Event]:
        answers: list[Event] = []
        for effect in effects:
            if type(effect) is PlaceOrder:
                answers += await self.place(effect.order)
            elif type(effect) is CancelVenueOrder:
                answers += await self.cancel(effect.cancel.client, effect.cancel.venue, effect.cancel.symbol,
                                             effect.cancel.client_order_id, effect.cancel.reason)
            elif type(effect) is CancelAllVenueOrders:
                answers += await self.cancel_all(effect.command.client, effect.command.venue, effect.command.symbol,
                                                 effect.command.reason)
        return answers

    # --- orders

    async def place(self, order: SubmitOrder) -> list[Event]:
        account = self.accounts[(order.client, order.venue)]
        if order.order_type not in ("market", "limit"):
            return [rejection(order.id, order, f"{order.order_type} orders are not placed on live venues yet")]
        if order.time_in_force == "GTD":  # sent as it is, it would rest past its expiry
            return [rejection(order.id, order, "GTD orders are not placed on live venues yet")]
        try:
            symbol = await account.symbol(order.symbol)
        except KeyError:
            return [rejection(order.id, order, f"{order.venue} lists no market {order.symbol}")]
        problem, amount, price = self._fit(account, symbol, order)
        if problem:
            return [rejection(order.id, order, problem)]
        params = {"newClientOrderId": order.id}
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                placed = await account.exchange.create_order(symbol, order.order_type, order.side, amount, price,
                                                              params)
                return self._accepted(account, order, placed)
            except ccxt_errors.NetworkError as exc:  # the answer is lost, not the order: look before sending again
                found = await self._find(account, symbol, order.id)
                if found is not None:
                    return self._accepted(account, order, found)
                if attempt == MAX_ATTEMPTS:
                    return [rejection(order.id, order, f"{order.venue} unreachable after {attempt} attempts: "
                                                       f"{account.scrub(type(exc).__name__ + ': ' + str(exc))}")]
                await asyncio.sleep(_backoff(attempt, exc))
            except ccxt_errors.ExchangeError as exc:
                if "Duplicate order" in str(exc):  # placed before (a restart, a lost answer): adopt it
                    found = await self._find(account, symbol, order.id)
                    if found is not None:
                        return self._accepted(account, order, found)
                return [rejection(order.id, order, f"{order.venue} refused: "
                                                   f"{account.scrub(type(exc).__name__ + ': ' + str(exc))}")]
        raise AssertionError("unreachable")

    def _fit(self, account: _Account, symbol: str, order: SubmitOrder) -> tuple[str | None, str, str | None]:
        """The order on the exchange's grid, or the rule it breaks."""
        ex = account.exchange
        market = ex.market(symbol)
        try:
            amount = ex.amount_to_precision(symbol, str(order.qty))
            price = ex.price_to_precision(symbol, str(order.limit_price)) if order.order_type == "limit" else None
        except ccxt_errors.BaseError as exc:
            return f"{order.venue} market rules: {exc}", "", None
        limits = market.get("limits") or {}
        min_amount = (limits.get("amount") or {}).get("min")
        if min_amount is not None and Decimal(amount) < Decimal(str(min_amount)):
            return f"qty {amount} is below {order.venue}'s minimum {min_amount} for {order.symbol}", amount, price
        min_cost = (limits.get("cost") or {}).get("min")
        if price is not None and min_cost is not None and Decimal(amount) * Decimal(price) < Decimal(str(min_cost)):
            return (f"notional {Decimal(amount) * Decimal(price)} is below {order.venue}'s minimum {min_cost} "
                    f"for {order.symbol}"), amount, price
        return None, amount, price

    async def _find(self, account: _Account, symbol: str, coid: str) -> dict[str, Any] | None:
        try:
            return await account.exchange.fetch_order(None, symbol, {"origClientOrderId": coid})
        except ccxt_errors.OrderNotFound:
            return None
        except ccxt_errors.BaseError as exc:  # cannot tell: the caller retries, which looks again
            log.warning("%s: looking up order %s failed: %s", account.venue, coid, account.scrub(str(exc)))
            return None

    def _accepted(self, account: _Account, order: SubmitOrder, placed: dict[str, Any]) -> list[Event]:
        venue_id = str(placed["id"])
        account.coids[venue_id] = order.id
        if len(account.coids) > ORDERS_REMEMBERED:  # the oldest first: its fills came long ago
            del account.coids[next(iter(account.coids))]
        account.since_ms.setdefault(order.symbol, int(placed.get("timestamp") or 0))
        return [OrderAccepted(id=order.id, ts_event=order.ts_event, client_order_id=order.id, venue_order_id=venue_id,
                              client=order.client, venue=order.venue, symbol=order.symbol)]

    async def cancel(self, client: str, venue: str, market_id: str, coid: str, reason: str) -> list[Event]:
        account = self.accounts[(client, venue)]
        symbol = await account.symbol(market_id)
        canceled = OrderCanceled(id=f"{coid}.canceled", ts_event=time.time_ns(), client_order_id=coid, client=client,
                                 venue=venue, symbol=market_id, reason=reason)
        try:
            await patiently(account.exchange.cancel_order, None, symbol, {"origClientOrderId": coid})
            return [canceled]
        except ccxt_errors.OrderNotFound:  # it raced a fill, or was never placed: the exchange knows which
            found = await self._find(account, symbol, coid)
            return [canceled] if found is not None and found.get("status") == "canceled" else []

    async def cancel_all(self, client: str, venue: str, market_id: str, reason: str) -> list[Event]:
        """Until the exchange reports no open order for the market (bounded by MAX_ATTEMPTS)."""
        account = self.accounts[(client, venue)]
        symbol = await account.symbol(market_id)
        answers: list[Event] = []
        for _ in range(MAX_ATTEMPTS):
            still_open = await patiently(account.exchange.fetch_open_orders, symbol)
            if not still_open:
                return answers
            for o in still_open:
                coid = o.get("clientOrderId") or f"{venue}-{o['id']}"
                answers += await self.cancel(client, venue, market_id, coid, reason)
        raise RuntimeError(f"{venue}: open orders of {market_id} still open after {MAX_ATTEMPTS} rounds of cancels")

    # --- fills

    async def fills(self) -> list[OrderFilled]:
        """The trades since the last poll of every market an order was placed on, as fills."""
        found: list[OrderFilled] = []
        for account in self.accounts.values():
            for market_id, since in list(account.since_ms.items()):
                symbol = await account.symbol(market_id)
                try:
                    trades = await account.exchange.fetch_my_trades(symbol, since, TRADES_PER_POLL)
                except ccxt_errors.NetworkError as exc:
                    log.warning("%s: reading trades failed, next poll tries again: %s", account.venue,
                                account.scrub(str(exc)))
                    continue
                for trade in trades:
                    found.append(self._fill(account, market_id, trade))
                    account.since_ms[market_id] = max(account.since_ms[market_id], int(trade["timestamp"]))
        return found

    def _fill(self, account: _Account, market_id: str, trade: dict[str, Any]) -> OrderFilled:
        price, qty = Decimal(str(trade["price"])), Decimal(str(trade["amount"]))
        fee = Decimal(0)
        if trade.get("fee") and trade["fee"].get("cost") is not None:
            fee = Decimal(str(trade["fee"]["cost"]))
            base = trade["symbol"].split("/")[0]
            if trade["fee"].get("currency") == base:  # a buy pays in what it receives: in quote, as bosun books it
                fee *= price
        order_id = str(trade["order"])
        coid = account.coids.get(order_id, f"{account.venue}-{order_id}")  # an order placed elsewhere keeps its own
        return OrderFilled(id=f"{account.venue}-{trade['id']}", ts_event=int(trade["timestamp"]) * 1_000_000,
                           client_order_id=coid, client=account.client, venue=account.venue, symbol=market_id,
                           side=trade["side"], qty=qty, price=price, fee=fee,
                           liquidity="maker" if trade.get("takerOrMaker") == "maker" else "taker")


async def patiently(call: Any, *args: Any) -> Any:
    """`call(*args)`, retried on the NetworkError family with backoff, at most MAX_ATTEMPTS times:
    for calls that change nothing on the exchange, or that are safe to repeat."""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            return await call(*args)
        except ccxt_errors.NetworkError as exc:
            if attempt == MAX_ATTEMPTS:
                raise
            await asyncio.sleep(_backoff(attempt, exc))
    raise AssertionError("unreachable")


def _backoff(attempt: int, exc: Exception) -> float:
    """Jittered exponential backoff; longer when the exchange asked for it (429 / 418)."""
    delay = min(MAX_BACKOFF_S, BACKOFF_S * 2 ** (attempt - 1))
    if isinstance(exc, ccxt_errors.DDoSProtection):  # RateLimitExceeded is one
        delay = MAX_BACKOFF_S
    return delay * (0.5 + random.random() / 2)
