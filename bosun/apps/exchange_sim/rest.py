"""The REST API: Binance's spot /api/v3 routes a live venue uses, with the REST faults around
them, and the /sim control routes for tests (advance the market, switch faults, read state)."""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import NamedTuple
from urllib.parse import parse_qsl

import msgspec
from aiohttp import web

from bosun.apps.exchange_sim import wire
from bosun.apps.exchange_sim.auth import Credentials, check_time, split_signature
from bosun.apps.exchange_sim.errors import INSUFFICIENT_BALANCE, BinanceError, error, filter_failure
from bosun.apps.exchange_sim.exchange import Exchange
from bosun.apps.exchange_sim.faults import FaultState, decode_faults
from bosun.apps.exchange_sim.params import Params
from bosun.apps.exchange_sim.stream import UserStreams

API = "/api/v3/"
MAX_TRADES_LIMIT = 1000
Handler = Callable[[web.Request, Params], Awaitable[object]]
Route = Callable[[web.Request], Awaitable[web.StreamResponse]]
REQUESTS_KEPT = 10_000  # the request log's bound (tests count requests; the benchmark times the handler)
THROTTLE_MESSAGES = {429: "Too much request weight used; current limit is 6000 request weight per 1 MINUTE.",
                     418: "Way too much request weight used; IP banned until further notice."}


class Served(NamedTuple):
    """One answered /api/v3 request (a dropped answer is not one)."""

    arrived_s: float  # time.monotonic()
    method: str
    path: str
    status: int
    handler_s: float  # from arrival to the answer, the latency fault included


def _json(data: object, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, separators=(",", ":")))


class Rest:
    def __init__(self, exchange: Exchange, credentials: Credentials, faults: FaultState,
                 streams: UserStreams) -> None:
        self.exchange, self.credentials, self.faults, self.streams = exchange, credentials, faults, streams
        # (arrival on the monotonic clock, method, path, status, seconds in the handler): the newest only
        self.requests: deque[Served] = deque(maxlen=REQUESTS_KEPT)

    def routes(self, app: web.Application) -> None:
        r = app.router
        r.add_get(API + "ping", self._public(lambda _r, _p: _async({})))
        r.add_get(API + "time", self._public(lambda _r, _p: _async({"serverTime": self.exchange.clock()})))
        r.add_get(API + "exchangeInfo", self._public(self.exchange_info))
        r.add_get(API + "account", self._signed(self.account))
        r.add_post(API + "order", self._signed(self.new_order))
        r.add_get(API + "order", self._signed(self.get_order))
        r.add_delete(API + "order", self._signed(self.cancel_order))
        r.add_post(API + "orderList/oco", self._signed(self.new_oco))
        r.add_get(API + "orderList", self._signed(self.get_order_list))
        r.add_delete(API + "orderList", self._signed(self.cancel_order_list))
        r.add_get(API + "openOrders", self._signed(self.open_orders))
        r.add_delete(API + "openOrders", self._signed(self.cancel_open_orders))
        r.add_get(API + "allOrders", self._signed(self.all_orders))
        r.add_get(API + "myTrades", self._signed(self.my_trades))
        r.add_post(API + "userDataStream", self._keyed(lambda _r, _p: _async({"listenKey": self.streams.create_key()})))
        r.add_put(API + "userDataStream", self._keyed(self.keep_alive))
        r.add_delete(API + "userDataStream", self._keyed(self.close_stream))
        r.add_post("/sim/advance", self.advance)
        r.add_post("/sim/faults", self.set_faults)
        r.add_delete("/sim/faults", self.clear_faults)
        r.add_get("/sim/state", self.state)

    # ------------------------------------------------------------------ plumbing

    def _public(self, handler: Handler) -> Route:
        return self._wrap(handler, key=False, signed=False)

    def _keyed(self, handler: Handler) -> Route:
        return self._wrap(handler, key=True, signed=False)

    def _signed(self, handler: Handler) -> Route:
        return self._wrap(handler, key=True, signed=True)

    def _wrap(self, handler: Handler, *, key: bool, signed: bool) -> Route:
        async def answer(request: web.Request) -> web.StreamResponse:
            try:
                body = await request.text()
                params = Params({**request.query, **dict(_form(body))})
                if key:
                    self.credentials.check_key(request.headers.get("X-MBX-APIKEY"))
                if signed:
                    payload, signature = split_signature(request.query_string, body)
                    self.credentials.check_signature(payload, signature)
                    check_time(params.optional("timestamp"), params.optional("recvWindow"), self.exchange.clock())
                return _json(await handler(request, params))
            except BinanceError as exc:
                return _json(exc.body(), exc.status)

        return self.faulted(answer, lambda status: {"code": -1003, "msg": THROTTLE_MESSAGES[status]})

    def faulted(self, answer: Route, throttle_body: Callable[[int], dict[str, object]]) -> Route:
        """`answer` (a dialect's route) behind the REST faults, its requests logged."""
        async def serve(request: web.Request) -> web.StreamResponse:
            arrived = time.monotonic()
            response = await faulty(request)
            self.requests.append(Served(arrived, request.method, request.path, response.status,
                                        time.monotonic() - arrived))
            return response

        async def faulty(request: web.Request) -> web.StreamResponse:
            faults, counted = self.faults.faults, self.faults.applies(request.path)
            if counted and self.faults.take("throttles"):
                status = faults.throttle_status
                return web.json_response(throttle_body(status), status=status,
                                         headers={"Retry-After": str(faults.retry_after_s)})
            if counted and self.faults.take("server_errors"):
                # A gateway's page, not the exchange's JSON: the request's outcome is unknown to the client.
                return web.Response(status=faults.server_error_status, text="Service Unavailable")
            response = await answer(request)
            if faults.latency_ms and counted:
                await asyncio.sleep(faults.latency_ms / 1000)  # the request took effect; its answer is late
            return response

        return serve

    def refused(self) -> None:
        """The order rejections switched on by the faults, as the exchange's errors."""
        rejection = self.faults.faults.reject_orders
        if rejection:
            raise error(INSUFFICIENT_BALANCE) if rejection == "insufficient_balance" else filter_failure(rejection)

    def drop_if_faulted(self, request: web.Request) -> None:
        """An accepted order whose answer the faults drop: the connection cut, no answer."""
        if self.faults.applies(request.path) and self.faults.take("drop_order_responses"):
            if request.transport is not None:
                request.transport.abort()  # accepted on the venue, but the client never hears it
            raise asyncio.CancelledError  # what aiohttp expects of a handler whose client is gone: no answer, no log

    # ------------------------------------------------------------------ market

    async def exchange_info(self, _request: web.Request, p: Params) -> object:
        return {"timezone": "UTC", "serverTime": self.exchange.clock(), "rateLimits": [], "exchangeFilters": [],
                "symbols": [wire.symbol_info(self.exchange.rules_of(s)) for s in self._symbols(p)]}

    def _symbols(self, p: Params) -> list[str]:
        """`symbols` (a JSON list), `symbol`, else all."""
        if p.optional("symbols"):
            try:
                symbols = json.loads(p.text("symbols"))
            except ValueError:
                symbols = None
            if not isinstance(symbols, list) or not all(isinstance(s, str) for s in symbols):
                raise BinanceError(400, -1100, "Illegal characters found in parameter 'symbols'.")
            return symbols
        symbol = p.optional("symbol")
        return list(self.exchange.rules) if symbol is None else [symbol]

    # ------------------------------------------------------------------ account and orders

    async def account(self, _request: web.Request, _p: Params) -> object:
        return wire.account(self.exchange.balances, self.exchange.clock(), self.exchange.fee_rate)

    async def new_order(self, request: web.Request, p: Params) -> object:
        args = p.order()
        self.refused()
        resp_type = p.optional("newOrderRespType") or ("FULL" if args["type"] in ("MARKET", "LIMIT") else "ACK")
        if resp_type not in ("ACK", "RESULT", "FULL"):
            raise BinanceError(400, -1100, "Illegal characters found in parameter 'newOrderRespType'.")
        order = self.exchange.place(**args)  # type: ignore[arg-type]
        self.drop_if_faulted(request)
        return wire.order_placed(order, order.fills, resp_type)

    async def new_oco(self, request: web.Request, p: Params) -> object:
        args = p.oco()
        self.refused()
        order_list = self.exchange.place_oco(**args)  # type: ignore[arg-type]
        self.drop_if_faulted(request)  # as for a single order: taken, and the answer lost
        now = self.exchange.clock()
        return wire.order_list(order_list, now, [wire.order_placed(o, o.fills, "RESULT") for o in order_list.legs])

    async def get_order_list(self, _request: web.Request, p: Params) -> object:
        return wire.order_list(self.exchange.get_list(*p.list_ref()), self.exchange.clock())

    async def cancel_order_list(self, _request: web.Request, p: Params) -> object:
        order_list = self.exchange.cancel_list(p.text("symbol"), *p.list_ref())
        now = self.exchange.clock()
        return wire.order_list(order_list, now, [wire.order_canceled(o, now) for o in order_list.legs])

    async def get_order(self, _request: web.Request, p: Params) -> object:
        return wire.order_info(self.exchange.get(p.text("symbol"), *p.order_ref()))

    async def cancel_order(self, _request: web.Request, p: Params) -> object:
        order_id, client_id = p.order_ref()
        order = self.exchange.cancel(p.text("symbol"), order_id, client_id, p.client_id("newClientOrderId"))
        return wire.order_canceled(order, self.exchange.clock())

    async def open_orders(self, _request: web.Request, p: Params) -> object:
        return [wire.order_info(o) for o in self.exchange.open_orders(p.optional("symbol"))]

    async def cancel_open_orders(self, _request: web.Request, p: Params) -> object:
        now = self.exchange.clock()
        return [wire.order_canceled(o, now) for o in self.exchange.cancel_all(p.text("symbol"))]

    async def all_orders(self, _request: web.Request, p: Params) -> object:
        symbol = p.text("symbol")
        self.exchange.rules_of(symbol)
        start, limit = p.integer("startTime"), p.integer("limit", 500, 1, MAX_TRADES_LIMIT)
        orders = [o for o in self.exchange.orders.values() if o.symbol == symbol
                  and (start is None or o.time_ms >= start)]
        return [wire.order_info(o) for o in orders[-limit:]]  # type: ignore[index]

    async def my_trades(self, _request: web.Request, p: Params) -> object:
        fills = self.exchange.my_trades(
            p.text("symbol"), order_id=p.integer("orderId"), from_id=p.integer("fromId"),
            start_ms=p.integer("startTime"), end_ms=p.integer("endTime"),
            limit=p.integer("limit", 500, 1, MAX_TRADES_LIMIT))  # type: ignore[arg-type]
        return [wire.my_trade(f) for f in fills]

    async def keep_alive(self, _request: web.Request, p: Params) -> object:
        self.streams.keep_alive(p.optional("listenKey"))
        return {}

    async def close_stream(self, _request: web.Request, p: Params) -> object:
        self.streams.close_key(p.optional("listenKey"))
        return {}

    # ------------------------------------------------------------------ control

    async def advance(self, request: web.Request) -> web.Response:
        """`{"trades": N}` replays the next N trades; `{"until_ms": T}` every trade up to market time T."""
        try:
            body = json.loads(await request.text() or "{}")
            trades, until = int(body.get("trades", 0)), body.get("until_ms")
            if trades < 0 or (until is not None and not isinstance(until, int)) or set(body) - {"trades", "until_ms"}:
                raise ValueError
        except (ValueError, TypeError, AttributeError):
            return _json({"error": 'expected {"trades": <count >= 0>} or {"until_ms": <market time in ms>}'}, 400)
        replayed = self.exchange.advance(trades=trades, until_ms=until)
        return _json({"replayed": replayed, **self._market_state()})

    async def set_faults(self, request: web.Request) -> web.Response:
        try:
            self.faults.set(decode_faults(await request.read()))
        except ValueError as exc:
            return _json({"error": str(exc)}, 400)
        return _json({"faults": msgspec.to_builtins(self.faults.faults)})

    async def clear_faults(self, _request: web.Request) -> web.Response:
        self.faults.set(type(self.faults.faults)())
        return _json({})

    async def state(self, _request: web.Request) -> web.Response:
        balances = self.exchange.balances
        return _json({**self._market_state(), "open_orders": len(self.exchange.open_orders(None)),
                      "events_sent": self.streams.events_sent, "stream_connections": len(self.streams.connections),
                      "faults_left": self.faults.left,
                      "balances": {a: {"free": wire.num(balances.free.get(a, Decimal(0))),
                                       "locked": wire.num(balances.locked.get(a, Decimal(0)))}
                                   for a in balances.assets()}})

    def _market_state(self) -> dict[str, object]:
        nxt = self.exchange.replay.peek()
        return {"market_ms": self.exchange.market_ms, "trades_replayed": self.exchange.replay.replayed,
                "next_trade_ms": nxt.time_ms if nxt else None,
                "last_prices": {s: wire.num(p) for s, p in self.exchange.last_price.items()}}


def _form(body: str) -> list[tuple[str, str]]:
    return parse_qsl(body, keep_blank_values=True) if body else []


async def _async(value: object) -> object:
    return value
