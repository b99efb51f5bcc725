"""The live venues' edge: ccxt's async API, and the only place that holds exchange keys.

It carries out the LiveAdapter's effects and answers with the Order* events the exchange
gives, and reads each account's trades for fills. What it guarantees:
- an order goes out with its client order id (Binance's `newClientOrderId`, Bybit's `orderLinkId`:
  what differs per exchange is in dialects.py), rounded to the exchange's
  own market rules first; an order those rules refuse is rejected here, naming the rule;
- an order found unanswered in the log after a restart is looked up by its client order id
  before it is sent (the exchange may hold it done, and then refuses no second one), and not
  sent when the exchange cannot say;
- a network failure (ccxt's NetworkError family: RequestTimeout, ExchangeNotAvailable, ...) is
  retried at most MAX_ATTEMPTS times with jittered exponential backoff, and before each retry
  the order is looked up by its client order id, so a request whose answer was lost is never
  placed twice; "duplicate order" means the same;
- order requests keep the account's pace (pacing.py: the order budget, the minimum replace
  interval, and after a 429 / 418 (DDoSProtection, RateLimitExceeded) the exchange's
  Retry-After); a throttled place was refused unread, so it is sent again in its turn, unlooked;
- anything else the exchange refuses (InvalidOrder, InsufficientFunds, AuthenticationError,
  ...) becomes OrderRejected with the exchange's reason, keys scrubbed from it;
- a cancel that finds no order (it raced a fill) is resolved by fetching the order;
- protective orders (stop_market / take_profit_market, closing the position) go out as the
  exchange's own STOP_LOSS / TAKE_PROFIT, sized by what the account holds (spot: protective.py);
  a bracket's two legs as one OCO order list (`place_bracket`), placed again over what is held
  after a fill changed the position (`resize_bracket`);
- within a round, cancels of orders placed before go first: on spot a bracket locks what the
  position holds, and a sell in the same round needs it free.
On start, `venue_state` reads what each account holds for execution to reconcile with."""

from __future__ import annotations

import asyncio
import copy
import logging
import math
import os
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial
from decimal import Decimal
from typing import Any

import ccxt.async_support as ccxt_async
import ccxt.pro as ccxt_pro
from ccxt.base import errors as ccxt_errors

from proto.events import Event, OrderAccepted, OrderCanceled, OrderFilled, SubmitOrder
from services.execution.config import ExecutionConfig, VenueConfig
from services.execution.orders import rejection
from services.execution.venues import protective
from services.execution.venues.dialects import dialect, point_at
from services.execution.venues.live import (CancelAllVenueOrders, CancelVenueOrder, PlaceBracket, PlaceOrder,
                                            ResizeBracket, SettleBracket, VenueFound)
from services.execution.venues.pacing import Pacing

log = logging.getLogger(__name__)
# Time in force IOC / FOK -> the order types it goes out with (Binance spot takes it on limit orders;
# a market order never rests, so an IOC one is a plain market order).
IMMEDIATE_TYPES = {"IOC": ("limit", "market"), "FOK": ("limit",)}

MAX_ATTEMPTS = 5
BACKOFF_S, MAX_BACKOFF_S = 0.2, 5.0
THROTTLED = (ccxt_errors.DDoSProtection, ccxt_errors.RateLimitExceeded)  # siblings in ccxt 4.5: both
MAX_WAIT_S = 30.0  # an order request that would wait longer for its turn (budget, Retry-After) is not sent
TRADES_PER_POLL = 500  # per symbol and poll: a bound, the next poll goes on from the newest
ORDERS_REMEMBERED = 100_000  # per account: the exchange's order ids whose fills are named by our ids
CLOCK_SLACK_MS = 60_000  # an order acknowledged without a time: its trades are read from this long before now


def credentials(exchange: str, environ: Mapping[str, str]) -> dict[str, str]:
    """ccxt's apiKey / secret / password from BOSUN_<EXCHANGE>_API_{KEY,SECRET,PASSWORD}."""
    prefix = f"BOSUN_{exchange.upper()}_API_"
    names = {"apiKey": "KEY", "secret": "SECRET", "password": "PASSWORD"}
    return {field: environ[prefix + name] for field, name in names.items() if prefix + name in environ}


class _Account:
    def __init__(self, client: str, venue: str, cfg: VenueConfig, environ: Mapping[str, str]) -> None:
        self.client, self.venue, self.cfg = client, venue, cfg
        keys = credentials(cfg.exchange, environ)
        self._secrets = [v for v in keys.values() if v]
        self.dialect = dialect(cfg.exchange)
        options = copy.deepcopy(self.dialect.options)
        # ccxt.pro's class where there is one: the same REST API, plus the user stream (user_stream.py).
        module = ccxt_pro if hasattr(ccxt_pro, cfg.exchange) else ccxt_async
        self.exchange = getattr(module, cfg.exchange)({**keys, "enableRateLimit": True, "options": options})
        if cfg.api_url:
            point_at(self.exchange, cfg.api_url)
        self.pacing = Pacing(cfg.order_budget, cfg.order_budget_window_s, cfg.min_replace_interval_s)
        self.coids: dict[str, str] = {}  # the exchange's order id -> our client order id, oldest first
        self.since_ms: dict[str, int] = {}  # symbol -> newest trade time read, for the next poll

    def keep_retry_after(self) -> None:
        """After a 429 / 418: no request to the exchange before its Retry-After has passed."""
        self.pacing.retry_after(time.monotonic(), _retry_after_s(self.exchange.last_response_headers))

    def remember(self, venue_id: str, coid: str) -> None:
        self.coids[venue_id] = coid
        if len(self.coids) > ORDERS_REMEMBERED:  # the oldest first: its fills came long ago
            del self.coids[next(iter(self.coids))]

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
        for effect in _in_turn(effects):
            if type(effect) is PlaceOrder:
                answers += await self.place(effect.order, effect.look_first)
            elif type(effect) is PlaceBracket:
                answers += await self.place_bracket(effect.stop, effect.take_profit)
            elif type(effect) is ResizeBracket:
                answers += await self.resize_bracket(effect.stop, effect.take_profit)
            elif type(effect) is SettleBracket:
                answers += await self.settle_bracket(effect.filled, effect.siblings)
            elif type(effect) is CancelVenueOrder:
                answers += await self.cancel(effect.cancel.client, effect.cancel.venue, effect.cancel.symbol,
                                             effect.cancel.client_order_id, effect.cancel.reason)
            elif type(effect) is CancelAllVenueOrders:
                answers += await self.cancel_all(effect.command.client, effect.command.venue, effect.command.symbol,
                                                 effect.command.reason)
        return answers

    # --- orders

    async def place(self, order: SubmitOrder, look_first: bool = False) -> list[Event]:
        account = self.accounts[(order.client, order.venue)]
        if order.order_type not in ("market", "limit", *protective.TRIGGERS):
            return [rejection(order.id, order, f"{order.order_type} orders are not placed on live venues yet")]
        if order.time_in_force == "GTD":  # sent as it is, it would rest past its expiry
            return [rejection(order.id, order, "GTD orders are not placed on live venues yet")]
        immediate = IMMEDIATE_TYPES.get(order.time_in_force)
        if immediate is not None and order.order_type not in immediate:
            return [rejection(order.id, order, f"{order.time_in_force} orders are placed on live venues as "
                                               f"{' or '.join(immediate)} orders only, not {order.order_type}")]
        try:
            symbol = await account.symbol(order.symbol)
        except KeyError:
            return [rejection(order.id, order, f"{order.venue} lists no market {order.symbol}")]
        if look_first:
            # Sent before a restart, it may be done on the exchange, which refuses a duplicate client
            # order id only while the order is open: sent only once the exchange says it has none.
            try:
                found = await patiently(account.dialect.fetch_by_client_id, account.exchange, symbol, order.id)
                return self._accepted(account, order, found)
            except ccxt_errors.OrderNotFound:
                pass
            except ccxt_errors.BaseError as exc:
                return [rejection(order.id, order, f"{order.venue} could not say whether it holds the order sent "
                                                   f"before the restart, so it is not sent again: "
                                                   f"{_named(account, exc)}")]
        elif order.order_type in protective.TRIGGERS:
            # Sized by the free balance it then locks: a leg placed before would find none the second time.
            found = await self._find(account, symbol, order.id)
            if found is not None:
                return self._accepted(account, order, found)
        return await self._place_new(account, symbol, order)

    async def _place_new(self, account: _Account, symbol: str, order: SubmitOrder) -> list[Event]:
        params: dict[str, Any] = {account.dialect.client_id_param: order.id}
        sent = order
        if order.order_type in protective.TRIGGERS or order.reduce_only:
            sized = await protective.sized(account.exchange, symbol, order, patiently)
            if isinstance(sized, str):
                return [rejection(order.id, order, sized)]
            sent, trigger = sized
            params.update(trigger)
        problem, amount, price = self._fit(account, symbol, sent)
        if problem:
            return [rejection(order.id, order, problem)]
        ccxt_type = "limit" if order.order_type == "limit" else "market"  # a trigger's type is in its params
        if ccxt_type == "limit" and order.time_in_force in ("IOC", "FOK"):
            params["timeInForce"] = order.time_in_force  # else ccxt's default, GTC
        if order.post_only:  # a LIMIT_MAKER on Binance spot: the exchange refuses it if it would take
            params["postOnly"] = True
        placed = await self._send(account, order.symbol, partial(account.exchange.create_order, symbol, ccxt_type,
                                                                 order.side, amount, price, params),
                                  partial(self._find, account, symbol, order.id))
        if isinstance(placed, str):
            return [rejection(order.id, order, placed)]
        if order.time_in_force in ("IOC", "FOK") and placed.get("status") is None:
            # The answer only acknowledged it (Bybit): what became of it is read back.
            placed = await self._find(account, symbol, order.id) or placed
        return self._accepted(account, order, placed)

    async def _send(self, account: _Account, market_id: str, send: Callable[[], Awaitable[Any]],
                    find: Callable[[], Awaitable[Any]]) -> Any:
        """`send()` (an order request) with the retries above: the exchange's answer, or what
        `find()` finds of it when the answer was lost or it was a duplicate; else why not (a str)."""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                return await self._request(account, market_id, False, send)
            except NotNow as exc:
                return f"{account.venue}: order not sent: {exc}"
            except THROTTLED as exc:  # refused unread (429 / 418): the next try waits its Retry-After
                if attempt == MAX_ATTEMPTS:
                    return f"{account.venue} throttled {attempt} attempts: {_named(account, exc)}"
            except ccxt_errors.NetworkError as exc:  # the answer is lost, not the order: look before sending again
                found = await find()
                if found is not None:
                    return found
                if attempt == MAX_ATTEMPTS:
                    return f"{account.venue} unreachable after {attempt} attempts: {_named(account, exc)}"
                await asyncio.sleep(_backoff(attempt, exc))
            except ccxt_errors.ExchangeError as exc:
                if isinstance(exc, ccxt_errors.DuplicateOrderId) or account.dialect.is_duplicate(exc):
                    # placed before (a restart, a lost answer): adopt it
                    found = await find()
                    if found is not None:
                        return found
                return f"{account.venue} refused: {_named(account, exc)}"
        raise AssertionError("unreachable")

    async def place_bracket(self, stop: SubmitOrder, take_profit: SubmitOrder) -> list[Event]:
        """A bracket's two legs as one OCO order list (Binance spot), so that the exchange itself lets
        only one of them fill, whether or not bosun is running. The list's client id is the legs'
        OCO group, each leg keeps its own, so their fills and answers name bosun's orders. Found on
        the exchange already (a restart, a lost answer), the list is adopted; a leg placed alone
        before its sibling came is canceled first and placed again within the list. A list the
        exchange refuses (its prices no longer straddle the market, ...) leaves the stop placed alone."""
        account = self.accounts[(stop.client, stop.venue)]
        if not account.dialect.oco_lists:  # the stop goes out alone, the second leg is refused (dialects.py)
            return await self.place(stop) + await self.place(take_profit)
        legs = (take_profit, stop)  # above and below the market: a sell's (spot closes longs only)
        try:
            symbol = await account.symbol(stop.symbol)
        except KeyError:
            return [rejection(leg.id, leg, f"{leg.venue} lists no market {leg.symbol}") for leg in legs]
        found = await self._find_list(account, stop.oco)
        if found is not None:
            return await self._list_answers(account, symbol, legs, found, adopted=True)
        working = {o.get("clientOrderId") for o in await patiently(account.exchange.fetch_open_orders, symbol)}
        for leg in legs:
            if leg.id in working:  # placed alone before its sibling came
                try:
                    await patiently(self._request, account, leg.symbol, True, account.exchange.cancel_order, None,
                                    symbol, account.dialect.by_client_id(leg.id))
                except ccxt_errors.OrderNotFound:
                    pass  # it filled meanwhile: the position is closed, and the list finds nothing to sell
        return await self._send_list(account, symbol, stop, take_profit)

    async def resize_bracket(self, stop: SubmitOrder, take_profit: SubmitOrder) -> list[Event]:
        """After a fill that changed the position: the bracket's list placed again (same ids) over
        what the account now holds, when that differs from what it covers. Should execution stop
        between the cancel and the new list, reconciliation finds the legs gone and re-arms them."""
        account = self.accounts[(stop.client, stop.venue)]
        if not account.dialect.oco_lists:
            return []  # the stop went out alone, sized when it was placed
        symbol = await account.symbol(stop.symbol)
        found = await self._find_list(account, stop.oco, open_only=True)
        leg = await self._find(account, symbol, stop.id) if found is not None else None
        if leg is None or leg.get("status") != "open":
            return []  # no list open: nothing to resize (a leg's fill settles it)
        ex = account.exchange
        free = ((await patiently(ex.fetch_balance)).get(ex.market(symbol)["base"]) or {}).get("free") or 0
        held = ex.amount_to_precision(symbol, str(Decimal(str(free)) + Decimal(str(leg["remaining"]))))
        if Decimal(held) == Decimal(str(leg["amount"])):
            return []
        try:
            await patiently(self._request, account, stop.symbol, True, ex.cancel_order, None, symbol,
                            account.dialect.by_client_id(stop.id))  # the whole list goes with it
        except ccxt_errors.OrderNotFound:
            return []  # a leg triggered meanwhile: its fill settles the bracket
        return await self._send_list(account, symbol, stop, take_profit)

    async def _send_list(self, account: _Account, symbol: str, stop: SubmitOrder, take_profit: SubmitOrder
                         ) -> list[Event]:
        """The legs' list over the free balance; refused, the stop goes out alone."""
        legs = (take_profit, stop)
        sized = await protective.sized(account.exchange, symbol, stop, patiently)
        if isinstance(sized, str):
            return [rejection(leg.id, leg, sized) for leg in legs]
        problem, amount, _ = self._fit(account, symbol, sized[0])
        if problem:
            return [rejection(leg.id, leg, problem) for leg in legs]
        ex = account.exchange
        params = protective.oco_list(ex.market(symbol)["id"], stop, take_profit, amount,
                                     ex.price_to_precision(symbol, str(stop.stop_price)),
                                     ex.price_to_precision(symbol, str(take_profit.stop_price)))
        placed = await self._send(account, stop.symbol, partial(ex.private_post_orderlist_oco, params),
                                  partial(self._find_list, account, stop.oco, open_only=True))
        if isinstance(placed, str):
            return [rejection(take_profit.id, take_profit, f"{placed} (the stop-loss goes out alone)"),
                    *await self._place_new(account, symbol, stop)]
        return await self._list_answers(account, symbol, legs, placed, adopted=False)

    async def _find_list(self, account: _Account, list_client_id: str | None, open_only: bool = False
                         ) -> dict[str, Any] | None:
        """The newest order list with that client id (`open_only`: if it is still open)."""
        try:
            found = await account.exchange.private_get_orderlist({"origClientOrderId": list_client_id})
            return None if open_only and found.get("listOrderStatus") == "ALL_DONE" else found
        except ccxt_errors.OrderNotFound:
            return None
        except ccxt_errors.BaseError as exc:  # cannot tell: the caller retries, which looks again
            log.warning("%s: looking up order list %s failed: %s", account.venue, list_client_id, _named(account, exc))
            return None

    async def _list_answers(self, account: _Account, symbol: str, legs: Sequence[SubmitOrder], placed: dict[str, Any],
                            adopted: bool) -> list[Event]:
        """Each leg accepted; an adopted list's legs done meanwhile (expired or canceled) also closed."""
        venue_ids = {o["clientOrderId"]: o["orderId"] for o in placed["orders"]}
        answers: list[Event] = []
        for leg in legs:
            answers += self._accepted(account, leg, {"id": venue_ids[leg.id], "timestamp": placed["transactionTime"]})
            if adopted and placed.get("listOrderStatus") == "ALL_DONE":
                answers += await self.settle_bracket(None, (leg,))
        return answers

    async def settle_bracket(self, filled: str | None, siblings: Sequence[SubmitOrder]) -> list[Event]:
        """After a leg of a bracket filled: each other leg closed, as the exchange's OCO list did (it
        expired them), or canceled here when it went out alone. A leg still to be filled is left."""
        answers: list[Event] = []
        for leg in siblings:
            account = self.accounts[(leg.client, leg.venue)]
            found = await self._find(account, await account.symbol(leg.symbol), leg.id)
            why = f"one-cancels-the-other: {filled} filled" if filled else "its OCO order list is done"
            if found is None:
                continue
            if found.get("status") in ("canceled", "expired"):
                answers.append(OrderCanceled(id=f"{leg.id}.canceled", ts_event=time.time_ns(), client_order_id=leg.id,
                                             client=leg.client, venue=leg.venue, symbol=leg.symbol, reason=why))
            elif found.get("status") == "open" and filled:
                answers += await self.cancel(leg.client, leg.venue, leg.symbol, leg.id, why)
        return answers

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

    async def _request(self, account: _Account, market_id: str, canceling: bool, call: Any, *args: Any) -> Any:
        """An order request (place or cancel) in its turn: within the order budget, after the
        exchange's Retry-After, and a place not sooner than the minimum replace interval after a
        cancel on its market. A turn further off than MAX_WAIT_S raises NotNow."""
        pacing = account.pacing
        while (wait := pacing.wait_s(time.monotonic(), market_id, placing=not canceling)) > 0:
            if wait > MAX_WAIT_S:
                raise NotNow(f"{account.venue} takes no order request for {wait:.1f} s more (order budget "
                             f"{account.cfg.order_budget} per {account.cfg.order_budget_window_s} s, or its Retry-After)")
            await asyncio.sleep(wait)
        pacing.sent(time.monotonic())
        try:
            return await call(*args)
        except THROTTLED:
            account.keep_retry_after()
            raise
        finally:
            if canceling:
                pacing.canceled(time.monotonic(), market_id)

    async def _find(self, account: _Account, symbol: str, coid: str) -> dict[str, Any] | None:
        try:
            return await account.dialect.fetch_by_client_id(account.exchange, symbol, coid)
        except ccxt_errors.OrderNotFound:
            return None
        except ccxt_errors.BaseError as exc:  # cannot tell: the caller retries, which looks again
            log.warning("%s: looking up order %s failed: %s", account.venue, coid, account.scrub(str(exc)))
            return None

    def _accepted(self, account: _Account, order: SubmitOrder, placed: dict[str, Any]) -> list[Event]:
        venue_id = str(placed["id"])
        account.remember(venue_id, order.id)
        account.since_ms.setdefault(order.symbol, int(placed.get("timestamp")
                                                      or time.time_ns() // 1_000_000 - CLOCK_SLACK_MS))
        # Acknowledged when the exchange's answer reached us (on our clock, the SubmitOrder's): what
        # order-to-ack latency measures, with no skew between the exchange's clock and ours.
        accepted: list[Event] = [OrderAccepted(id=order.id, ts_event=time.time_ns(), client_order_id=order.id,
                                               venue_order_id=venue_id, client=order.client, venue=order.venue,
                                               symbol=order.symbol)]
        status = placed.get("status")
        if status == "expired" or status == "canceled" and order.time_in_force in ("IOC", "FOK"):
            # IOC / FOK: what did not fill at once is gone (its fills come as any); Binance says expired, Bybit canceled
            accepted.append(OrderCanceled(id=f"{order.id}.canceled", ts_event=time.time_ns(), client_order_id=order.id,
                                          client=order.client, venue=order.venue, symbol=order.symbol,
                                          reason=f"{order.time_in_force}: the exchange expired what did not fill at once"))
        return accepted

    async def cancel(self, client: str, venue: str, market_id: str, coid: str, reason: str) -> list[Event]:
        account = self.accounts[(client, venue)]
        symbol = await account.symbol(market_id)
        canceled = OrderCanceled(id=f"{coid}.canceled", ts_event=time.time_ns(), client_order_id=coid, client=client,
                                 venue=venue, symbol=market_id, reason=reason)
        try:
            await patiently(self._request, account, market_id, True, account.exchange.cancel_order, None, symbol,
                            account.dialect.by_client_id(coid))
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

    async def fills(self, accounts: Sequence[_Account] | None = None) -> list[OrderFilled]:
        """The trades since the last poll of every market an order was placed on, as fills."""
        found: list[OrderFilled] = []
        for account in self.accounts.values() if accounts is None else accounts:
            for market_id, since in list(account.since_ms.items()):
                if account.pacing.held(time.monotonic()):  # the exchange's Retry-After: the next poll then
                    break
                symbol = await account.symbol(market_id)
                try:
                    trades = await account.exchange.fetch_my_trades(symbol, since, TRADES_PER_POLL,
                                                                    dict(account.dialect.trades_params))
                except THROTTLED as exc:
                    account.keep_retry_after()
                    log.warning("%s: reading trades throttled (%s); polls wait its Retry-After", account.venue,
                                type(exc).__name__)
                    break
                except ccxt_errors.BaseError as exc:  # a poll that fails is not worth the service
                    log.warning("%s: reading trades failed, next poll tries again: %s", account.venue,
                                _named(account, exc))
                    continue
                found += await self._fills(account, market_id, symbol, trades)
        return found

    def fills_of(self, account: _Account, trades: Sequence[dict[str, Any]]) -> list[OrderFilled]:
        """ccxt's trades (polled, or from the user stream) as fills; the next poll goes on from the newest."""
        found = []
        for trade in trades:
            market_id = account.exchange.market(trade["symbol"])["id"]
            found.append(self._fill(account, market_id, trade))
            account.since_ms[market_id] = max(account.since_ms.get(market_id, 0), int(trade["timestamp"]))
        return found

    async def _fills(self, account: _Account, market_id: str, symbol: str, trades: list[dict[str, Any]]
                     ) -> list[OrderFilled]:
        """Trades as fills, named by our client order ids (an order not placed by this process is
        looked up once: its fills after a restart keep the id it was placed with)."""
        for order_id in {str(t["order"]) for t in trades} - account.coids.keys():
            try:
                placed = await patiently(account.exchange.fetch_order, order_id, symbol)
            except ccxt_errors.BaseError as exc:
                log.warning("%s: looking up order %s failed: %s", account.venue, order_id, account.scrub(str(exc)))
                continue
            if placed.get("clientOrderId"):
                account.remember(order_id, placed["clientOrderId"])
        return self.fills_of(account, trades)

    async def venue_state(self, last_fills: Mapping[tuple[str, str, str], tuple[str, int]]) -> list[VenueFound]:
        """On start, for each account: its open orders, its trades since the newest fill recorded
        (`last_fills`, per client, venue and market) and its balances, per market that has any of
        them. The trades are read on from there by `fills`. An exchange that cannot be read is an
        error naming the venue (keys scrubbed): execution stops, and its supervisor starts it again."""
        found: list[VenueFound] = []
        for (client, venue), account in self.accounts.items():
            for (c, v, market_id), (_, ts_ns) in last_fills.items():
                if (c, v) == (client, venue):
                    account.since_ms[market_id] = min(account.since_ms.get(market_id, ts_ns // 1_000_000),
                                                      ts_ns // 1_000_000)
            try:
                found += await self._account_state(account)
            except ccxt_errors.BaseError as exc:
                raise RuntimeError(f"{venue}: reading what account {client} holds failed: "
                                   f"{_named(account, exc)}") from None
        return found

    async def _account_state(self, account: _Account) -> list[VenueFound]:
        ex = account.exchange
        if not ex.markets:
            await patiently(ex.load_markets)
        open_orders: dict[str, list[str]] = {}
        for o in await patiently(ex.fetch_open_orders):
            open_orders.setdefault(ex.market(o["symbol"])["id"], []).append(
                o.get("clientOrderId") or f"{account.venue}-{o['id']}")
        balances = await patiently(ex.fetch_balance)
        found: list[VenueFound] = []
        for market_id in sorted(open_orders.keys() | account.since_ms.keys()):
            symbol = await account.symbol(market_id)
            fills: list[OrderFilled] = []
            if market_id in account.since_ms:
                trades = await patiently(ex.fetch_my_trades, symbol, account.since_ms[market_id], TRADES_PER_POLL,
                                         dict(account.dialect.trades_params))
                fills = await self._fills(account, market_id, symbol, trades)
            held = (balances.get(ex.market(symbol)["base"]) or {}).get("total") or 0
            found.append(VenueFound(account.client, account.venue, market_id,
                                    tuple(sorted(open_orders.get(market_id, ()))), Decimal(str(held)), tuple(fills)))
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
        coid = (account.coids.get(order_id) or account.dialect.client_id_of_trade(trade)
                or f"{account.venue}-{order_id}")  # an order placed elsewhere keeps its own
        return OrderFilled(id=f"{account.venue}-{trade['id']}", ts_event=int(trade["timestamp"]) * 1_000_000,
                           client_order_id=coid, client=account.client, venue=account.venue, symbol=market_id,
                           side=trade["side"], qty=qty, price=price, fee=fee,
                           liquidity="maker" if trade.get("takerOrMaker") == "maker" else "taker")


def _in_turn(effects: Sequence[Any]) -> list[Any]:
    """Cancels of orders placed before this round go first: on spot a bracket's legs lock what the
    position holds, and a sell placed in the same round (a target that reduces) needs it free."""
    placing = {e.order.id for e in effects if type(e) is PlaceOrder}
    bracketed = {leg.id for e in effects if type(e) is PlaceBracket for leg in (e.stop, e.take_profit)}
    placed_here = placing | bracketed
    first = [e for e in effects if type(e) is CancelVenueOrder and e.cancel.client_order_id not in placed_here]
    early = {id(e) for e in first}
    # A leg whose sibling came in the same round goes out with it, as one list.
    return first + [e for e in effects
                    if id(e) not in early and not (type(e) is PlaceOrder and e.order.id in bracketed)]


def _named(account: _Account, exc: Exception) -> str:
    """An exchange's error as a reason: its class and message, keys scrubbed."""
    return account.scrub(f"{type(exc).__name__}: {exc}")


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


class NotNow(Exception):
    """An order request whose turn is too far off to wait for."""


def _retry_after_s(headers: Mapping[str, str] | None) -> float:
    """The exchange's Retry-After in seconds (its delta-seconds form, as Binance sends it), or
    MAX_BACKOFF_S when it sent none."""
    try:
        seconds = float((headers or {}).get("Retry-After", ""))
    except ValueError:
        return MAX_BACKOFF_S
    return seconds if math.isfinite(seconds) and seconds >= 0 else MAX_BACKOFF_S


def _backoff(attempt: int, exc: Exception) -> float:
    """Jittered exponential backoff; longer when the exchange asked for it (429 / 418)."""
    delay = min(MAX_BACKOFF_S, BACKOFF_S * 2 ** (attempt - 1))
    if isinstance(exc, THROTTLED):
        delay = MAX_BACKOFF_S
    return delay * (0.5 + random.random() / 2)
