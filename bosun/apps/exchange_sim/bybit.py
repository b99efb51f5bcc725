"""Bybit's v5 dialect: the spot routes ccxt's bybit uses (under /v5) and the private websocket
(/v5/private), over the same matching engine, balances and faults as the Binance routes.

Requests are signed as Bybit signs them: X-BAPI-SIGN is the HMAC-SHA256 (hex) of timestamp + API
key + recvWindow + the query string (GET) or the JSON body (POST), under the secret; the
timestamp must lie within X-BAPI-RECV-WINDOW of the server's clock. Refusals are HTTP 200 with a
non-zero retCode, as on Bybit; a throttle is HTTP 429 (or 418) with retCode 10006.

Where the simulator is not Bybit (see also bybit_wire.py): every order lives in one book, so
GET /v5/order/realtime lists conditional orders (tpslOrder, StopOrder) with the plain ones, and
order/cancel cancels either, whatever `orderFilter` says; a conditional order locks what it may
spend from the start, as a tpslOrder does (a StopOrder on Bybit locks only once triggered), and
keeps its order id when it triggers; a PostOnly order that would take is refused (retCode
170210) where Bybit takes it and then cancels it; an order id or orderLinkId is found among the
newest 10,000 closed orders, not 500; the account is a unified one (UTA 2.0) and nothing else."""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

from aiohttp import web

from bosun.apps.exchange_sim import bybit_wire as bw
from bosun.apps.exchange_sim.auth import Credentials, check_time
from bosun.apps.exchange_sim.book import Order
from bosun.apps.exchange_sim.errors import UNKNOWN_ORDER, BinanceError, bad_param, error
from bosun.apps.exchange_sim.exchange import Exchange
from bosun.apps.exchange_sim.params import Params
from bosun.apps.exchange_sim.rest import Rest
from bosun.apps.exchange_sim.stream import Connection, UserStreams

V5 = "/v5/"
PRIVATE_WS = "/v5/private"
MAX_EXECUTIONS = 100  # execution/list's page
MAX_ORDERS = 50  # order/realtime's and order/history's page
WEEK_MS = 7 * 24 * 3600 * 1000  # execution/list and order/history read at most 7 days from startTime
Handler = Callable[[web.Request, Params], Awaitable[object]]
TOPICS = ("order", "execution", "wallet")


class BybitRest:
    def __init__(self, rest: Rest) -> None:
        self.rest, self.exchange, self.credentials = rest, rest.exchange, rest.credentials

    def routes(self, app: web.Application) -> None:
        r = app.router
        r.add_get(V5 + "market/time", self._route(self.server_time, signed=False))
        r.add_get(V5 + "market/instruments-info", self._route(self.instruments, signed=False))
        r.add_get(V5 + "user/query-api", self._route(self.api_key_info))
        r.add_get(V5 + "account/info", self._route(self.account_info))
        r.add_get(V5 + "asset/coin/query-info", self._route(self.coins))
        r.add_get(V5 + "account/wallet-balance", self._route(self.wallet_balance))
        r.add_post(V5 + "order/create", self._route(self.create))
        r.add_post(V5 + "order/cancel", self._route(self.cancel))
        r.add_post(V5 + "order/cancel-all", self._route(self.cancel_all))
        r.add_get(V5 + "order/realtime", self._route(self.realtime))
        r.add_get(V5 + "order/history", self._route(self.history))
        r.add_get(V5 + "execution/list", self._route(self.executions))

    def _route(self, handler: Handler, signed: bool = True) -> Any:
        async def answer(request: web.Request) -> web.StreamResponse:
            now = self.exchange.clock()
            try:
                query = request.rel_url.raw_query_string
                body = await request.text()
                if signed:
                    self._authenticate(request, query if request.method == "GET" else body)
                params = dict(request.query)
                if body:
                    params.update(_json_body(body))
                result = await handler(request, Params(params))
                return web.json_response(bw.envelope(result, now), dumps=_dumps)
            except BinanceError as exc:
                code, msg = bw.ret_code(exc)
                status = 401 if code == 10003 else 200  # Bybit answers an unknown key with HTTP 401
                return web.json_response(bw.envelope({}, now, code, msg), status=status, dumps=_dumps)

        return self.rest.faulted(answer, lambda _status: bw.envelope({}, self.exchange.clock(), 10006,
                                                                     "Too many visits!"))

    def _authenticate(self, request: web.Request, payload: str) -> None:
        headers = request.headers
        key, stamp = headers.get("X-BAPI-API-KEY", ""), headers.get("X-BAPI-TIMESTAMP", "")
        window = headers.get("X-BAPI-RECV-WINDOW", "5000")
        self.credentials.check_key(key)
        check_time(stamp, window, self.exchange.clock())
        self.credentials.check_signature(stamp + key + window + payload, headers.get("X-BAPI-SIGN"))

    # ------------------------------------------------------------------ market and account

    async def server_time(self, _request: web.Request, _p: Params) -> object:
        now = self.exchange.clock()
        return {"timeSecond": str(now // 1000), "timeNano": str(now * 1_000_000)}

    async def instruments(self, _request: web.Request, p: Params) -> object:
        self._spot(p)
        symbol = p.optional("symbol")
        symbols = list(self.exchange.rules) if symbol is None else [self.exchange.rules_of(symbol).symbol]
        return {"category": "spot", "list": [bw.instrument(self.exchange.rules[s]) for s in symbols],
                "nextPageCursor": ""}

    async def api_key_info(self, _request: web.Request, _p: Params) -> object:
        return {"id": "1", "note": "bosun exchange-sim", "readOnly": 0, "secret": "", "ips": ["*"], "type": 1,
                "permissions": {"Spot": ["SpotTrade"], "Wallet": ["AccountTransfer"]}, "unified": 0, "uta": 1,
                "userID": 1, "inviterID": 0, "vipLevel": "No VIP", "mktMakerLevel": "0", "affiliateID": 0,
                "isMaster": True, "deadlineDay": -1, "expiredAt": "", "createdAt": ""}

    async def account_info(self, _request: web.Request, _p: Params) -> object:
        return {"unifiedMarginStatus": 5, "marginMode": "REGULAR_MARGIN", "isMasterTrader": False,
                "spotHedgingStatus": "OFF", "updatedTime": str(self.exchange.clock())}

    async def coins(self, _request: web.Request, _p: Params) -> object:
        assets = sorted({a for r in self.exchange.rules.values() for a in (r.base, r.quote)})
        return {"rows": [{"name": a, "coin": a, "remainAmount": "0", "chains": []} for a in assets]}

    async def wallet_balance(self, _request: web.Request, p: Params) -> object:
        if p.text("accountType") != "UNIFIED":
            raise BinanceError(400, -1100, "accountType: this account is a unified trading account (UNIFIED)")
        balances = self.exchange.balances
        coin = p.optional("coin")
        assets = balances.assets() if coin is None else [c for c in coin.split(",") if c in balances.assets()]
        return {"list": [bw.wallet(balances, assets)]}

    # ------------------------------------------------------------------ orders

    async def create(self, request: web.Request, p: Params) -> object:
        self._spot(p)
        args = self._order_args(p)
        client_id = args["client_id"]
        if client_id and any(o.client_id == client_id for o in reversed(self.exchange.orders.values())):
            raise BinanceError(400, -2010, "Duplicate order sent.")  # Bybit refuses an orderLinkId used before
        self.rest.refused()
        order = self.exchange.place(**args)  # type: ignore[arg-type]
        self.rest.drop_if_faulted(request)
        return {"orderId": str(order.id), "orderLinkId": order.client_id}

    def _order_args(self, p: Params) -> dict[str, object]:
        """Exchange.place's arguments for a POST /v5/order/create body."""
        side = {"Buy": "BUY", "Sell": "SELL"}.get(p.text("side"))
        kind = p.text("orderType")
        if side is None or kind not in ("Market", "Limit"):
            raise BinanceError(400, -1100, "side must be Buy or Sell, orderType Market or Limit")
        symbol = p.text("symbol")
        last = self.exchange.last_price.get(self.exchange.rules_of(symbol).symbol, Decimal(0))
        tif = p.optional("timeInForce") or "GTC"
        if tif not in ("GTC", "IOC", "FOK", "PostOnly"):
            raise BinanceError(400, -1115, "Invalid timeInForce.")
        trigger = p.decimal("triggerPrice")
        order_filter = p.optional("orderFilter") or "Order"
        if order_filter not in ("Order", "tpslOrder", "StopOrder") or (order_filter == "Order") != (not trigger):
            raise BinanceError(400, -1100, "orderFilter tpslOrder or StopOrder goes with a triggerPrice, Order "
                                           "without")
        qty = p.decimal("qty", required=True)
        # A spot market buy's qty is in the quote coin unless marketUnit says baseCoin (Bybit's default).
        in_quote = kind == "Market" and (p.optional("marketUnit") or ("quoteCoin" if side == "BUY" else "baseCoin")
                                         ) == "quoteCoin"
        engine_type = "MARKET" if kind == "Market" else ("LIMIT_MAKER" if tif == "PostOnly" else "LIMIT")
        if trigger:  # which way it waits: Bybit spot tells it from the trigger against the last price
            stop_loss = trigger < last if side == "SELL" else trigger > last
            engine_type = ("STOP_LOSS" if stop_loss else "TAKE_PROFIT") + ("_LIMIT" if kind == "Limit" else "")
        return {"symbol": symbol, "side": side, "type": engine_type,
                "time_in_force": tif if kind == "Limit" and tif != "PostOnly" else ("GTC" if kind == "Limit" else ""),
                "qty": Decimal(0) if in_quote else qty, "price": p.decimal("price", required=kind == "Limit"),
                "stop_price": trigger, "quote_qty": qty if in_quote else Decimal(0),
                "client_id": p.client_id("orderLinkId")}

    async def cancel(self, _request: web.Request, p: Params) -> object:
        self._spot(p)
        order = self._order(p, UNKNOWN_ORDER)
        if not order.is_open:
            raise BinanceError(400, -2011, "Order does not exist.")
        self.exchange.cancel(order.symbol, order.id, None)
        return {"orderId": str(order.id), "orderLinkId": order.client_id}

    async def cancel_all(self, _request: web.Request, p: Params) -> object:
        self._spot(p)
        symbol = p.optional("symbol")
        symbols = list(self.exchange.rules) if symbol is None else [self.exchange.rules_of(symbol).symbol]
        canceled: list[Order] = []
        for s in symbols:
            if self.exchange.open_orders(s):  # Bybit answers an empty list where Binance refuses
                canceled += self.exchange.cancel_all(s)
        return {"list": [{"orderId": str(o.id), "orderLinkId": o.client_id} for o in canceled], "success": "1"}

    async def realtime(self, _request: web.Request, p: Params) -> object:
        """Open orders, or the order named by orderId / orderLinkId whatever its status."""
        self._spot(p)
        if p.optional("orderId") or p.optional("orderLinkId"):
            found = self._maybe_order(p)
            orders = [found] if found is not None else []
        else:
            orders = self.exchange.open_orders(self._symbol(p))
        limit = p.integer("limit", 20, 1, MAX_ORDERS)
        return {"category": "spot", "list": [bw.order(o) for o in reversed(orders)][:limit], "nextPageCursor": ""}

    async def history(self, _request: web.Request, p: Params) -> object:
        self._spot(p)
        if p.optional("orderId") or p.optional("orderLinkId"):
            found = self._maybe_order(p)
            orders = [found] if found is not None and not found.is_open else []
        else:
            symbol = self._symbol(p)
            start, end = self._window(p)
            status = p.optional("orderStatus")
            orders = [o for o in self.exchange.orders.values() if not o.is_open and symbol in (None, o.symbol)
                      and start <= o.time_ms <= end and status in (None, bw.order_status(o))]
        limit = p.integer("limit", 20, 1, MAX_ORDERS)
        return {"category": "spot", "list": [bw.order(o) for o in reversed(orders)][:limit], "nextPageCursor": ""}

    async def executions(self, _request: web.Request, p: Params) -> object:
        """The account's trades, newest first, a page at a time (`cursor`: how many were read)."""
        self._spot(p)
        symbol = self._symbol(p)
        start, end = self._window(p)
        order_id, link_id = p.optional("orderId"), p.optional("orderLinkId")
        orders = self.exchange.orders
        fills = [f for f in reversed(self.exchange.trades) if symbol in (None, f.symbol)
                 and start <= f.time_ms <= end and order_id in (None, str(f.order_id))
                 and (link_id is None or (f.order_id in orders and orders[f.order_id].client_id == link_id))]
        skip = p.integer("cursor", 0) or 0
        limit = p.integer("limit", 50, 1, MAX_EXECUTIONS) or MAX_EXECUTIONS
        page = fills[skip:skip + limit]
        listed = [bw.execution(orders[f.order_id], f, orders[f.order_id].remaining, self.exchange.fee_rate)
                  for f in page if f.order_id in orders]
        more = skip + limit < len(fills)
        return {"category": "spot", "list": listed, "nextPageCursor": str(skip + limit) if more else ""}

    # ------------------------------------------------------------------ parameters

    def _window(self, p: Params) -> tuple[int, int]:
        """[startTime, endTime]: at most 7 days, the last 7 days when neither is given (Bybit's rule)."""
        start, end = p.integer("startTime"), p.integer("endTime")
        if start is None and end is None:
            end = self.exchange.clock()
        if start is None:
            start = end - WEEK_MS  # type: ignore[operator]
        if end is None:
            end = start + WEEK_MS
        if end - start > WEEK_MS or end < start:
            raise BinanceError(400, -1100, "The time range between startTime and endTime cannot exceed 7 days.")
        return start, end

    def _spot(self, p: Params) -> None:
        if p.text("category") != "spot":
            raise BinanceError(400, -1100, "category: this simulator serves category spot only")

    def _symbol(self, p: Params) -> str | None:
        symbol = p.optional("symbol")
        return None if symbol is None else self.exchange.rules_of(symbol).symbol

    def _maybe_order(self, p: Params) -> Order | None:
        order_id, link_id = p.integer("orderId"), p.client_id("orderLinkId")
        symbol = self._symbol(p)
        if order_id is not None:
            found = self.exchange.orders.get(order_id)
            return found if found is not None and link_id in (None, found.client_id) and symbol in (
                None, found.symbol) else None
        return next((o for o in reversed(self.exchange.orders.values())
                     if o.client_id == link_id and symbol in (None, o.symbol)), None)

    def _order(self, p: Params, missing: tuple[int, int, str]) -> Order:
        if not (p.optional("orderId") or p.optional("orderLinkId")):
            raise bad_param("orderId or orderLinkId")
        found = self._maybe_order(p)
        if found is None:
            raise error(missing)
        return found


class BybitPrivateStream:
    """GET /v5/private: `auth` (HMAC of "GET/realtime" + expires), then `subscribe` to the order,
    execution and wallet topics; the engine's events reach it through the user streams' faults."""

    def __init__(self, exchange: Exchange, credentials: Credentials, streams: UserStreams) -> None:
        self.exchange, self.credentials, self.streams = exchange, credentials, streams

    async def serve(self, request: web.Request) -> web.WebSocketResponse:
        topics: set[str] = set()
        authenticated = [False]

        def wrap(event: dict[str, object]) -> list[dict[str, object]]:
            return self._messages(event, topics)

        async def on_request(ws: web.WebSocketResponse, _connection: Connection, text: str) -> bool:
            answer, subscribed = self._answer(text, topics, authenticated)
            await ws.send_str(json.dumps(answer))
            return subscribed

        return await self.streams.serve(request, wrap, on_request)

    def _answer(self, text: str, topics: set[str], authenticated: list[bool]) -> tuple[dict[str, object], bool]:
        try:
            req = json.loads(text)
        except ValueError:
            req = None
        if not isinstance(req, dict):
            return {"success": False, "ret_msg": "Params Error: expected a JSON object with op and args",
                    "op": "", "conn_id": ""}, False
        op, args, req_id = req.get("op"), req.get("args") or [], req.get("req_id", "")
        answer: dict[str, object] = {"success": True, "ret_msg": "", "op": op, "conn_id": "sim", "req_id": req_id}
        if op == "ping":
            answer["ret_msg"] = "pong"
        elif op == "auth":
            why = self._auth_refusal(args)
            authenticated[0] = why is None
            if why:
                answer.update(success=False, ret_msg=why)
        elif op == "subscribe":
            unknown = [t for t in args if t not in TOPICS]
            if not authenticated[0] or unknown or not args:
                answer.update(success=False, ret_msg="Request not authorized" if not authenticated[0]
                              else f"Invalid topic: {unknown or args}")
                return answer, False
            topics.update(args)
            return answer, True
        elif op == "unsubscribe":
            topics.difference_update(args)
        else:
            answer.update(success=False, ret_msg=f"Unknown op {op!r}")
        return answer, False

    def _auth_refusal(self, args: object) -> str | None:
        if not isinstance(args, list) or len(args) != 3:
            return "Params Error: args must be [api_key, expires, signature]"
        key, expires, signature = (str(a) for a in args)
        try:
            self.credentials.check_key(key)
        except BinanceError:
            return "Invalid apikey"
        if not expires.isdigit() or int(expires) < self.exchange.clock():
            return "Params Error: the request expired"
        try:
            self.credentials.check_signature(f"GET/realtime{expires}", signature)
        except BinanceError:
            return "Invalid sign"
        return None

    def _messages(self, event: dict[str, object], topics: set[str]) -> list[dict[str, object]]:
        """The engine's event as Bybit's topic messages, those subscribed."""
        now = self.exchange.clock()
        messages = []
        if event["e"] == "executionReport":
            order = self.exchange.orders.get(event["i"])  # type: ignore[call-overload]
            if order is None:
                return []
            if event["x"] == "TRADE" and "execution" in topics:
                fill = next(f for f in order.fills if f.trade_id == event["t"])
                leaves = Decimal(str(event["q"])) - Decimal(str(event["z"]))
                messages.append(_topic("execution", now, [bw.execution(order, fill, leaves, self.exchange.fee_rate)]))
            if "order" in topics:
                messages.append(_topic("order", now, [{"category": "spot", **bw.order(order)}]))
        elif event["e"] == "outboundAccountPosition" and "wallet" in topics:
            assets = [b["a"] for b in event["B"]]  # type: ignore[attr-defined]
            messages.append(_topic("wallet", now, [bw.wallet(self.exchange.balances, assets)]))
        return messages


def _topic(topic: str, now_ms: int, data: list[dict[str, object]]) -> dict[str, object]:
    return {"id": secrets.token_hex(8), "topic": topic, "creationTime": now_ms, "data": data}


def _json_body(body: str) -> dict[str, str]:
    """A POST's JSON object, its values as the text a query string would carry."""
    try:
        value = json.loads(body)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise BinanceError(400, -1100, "the body must be a JSON object")
    return {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in value.items() if v is not None}


def _dumps(data: object) -> str:
    return json.dumps(data, separators=(",", ":"))
