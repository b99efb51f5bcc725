"""What differs between the spot exchanges the live venue trades on, behind one code path
(ccxt_edge.py, user_stream.py): ccxt's options, how an order is named by our client order id,
how a refused duplicate reads, where the streams are, and how the user stream is subscribed.

Binance spot: the client id is `newClientOrderId` (looked up as `origClientOrderId`); a bracket
goes out as one OCO order list; the user stream is the WebSocket API's subscription, confirmed
by its answer.
Bybit spot (v5, unified account): the client id is the `orderLinkId` (ccxt's `clientOrderId`);
trades are read in pages of 100, newest first, so ccxt pages through them (`paginate`); spot has
no OCO order list, so a bracket's stop-loss goes out alone as a TP/SL order (`tpslOrder`, which
locks the position it sells) and the take-profit beside it is refused, naming why, as on any
venue without OCO lists; the user stream (topic `execution`) counts as subscribed once the
private websocket's `auth` is confirmed (ccxt surfaces no answer to `subscribe`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ccxt.base import errors as ccxt_errors


@dataclass(frozen=True)
class Dialect:
    options: dict[str, Any]
    client_id_param: str  # create_order's param carrying our client order id
    lookup_param: str  # fetch_order's / cancel_order's param naming an order by that id
    duplicate_marker: str  # in the text of the exchange's refusal of a client id it holds already
    oco_lists: bool
    trade_client_id: str  # the key of a streamed trade's raw `info` naming its order's client id
    trades_params: dict[str, Any] = field(default_factory=dict)  # fetch_my_trades' params

    def by_client_id(self, coid: str) -> dict[str, str]:
        return {self.lookup_param: coid}

    def client_id_of_trade(self, trade: dict[str, Any]) -> str | None:
        """Our client order id as a trade from the user stream names it (a polled trade may not)."""
        return (trade.get("info") or {}).get(self.trade_client_id)

    def is_duplicate(self, refusal: Exception) -> bool:
        return self.duplicate_marker in str(refusal)

    async def fetch_by_client_id(self, exchange: Any, symbol: str, coid: str) -> dict[str, Any]:
        """The order named by our client order id, open or done; OrderNotFound if the exchange has none."""
        return await exchange.fetch_order(None, symbol, self.by_client_id(coid))

    def streams(self, ws: dict[str, Any], ws_base: str) -> dict[str, Any]:
        """ccxt.pro's `urls['api']['ws']` with the spot user streams on `ws_base`: Binance's `/ws`
        (listen key) and `/ws-api/v3`."""
        return {**ws, "spot": ws_base + "/ws", "ws-api": {**ws.get("ws-api", {}), "spot": ws_base + "/ws-api/v3"}}

    async def subscribe(self, exchange: Any) -> None:
        """Returns once the user stream is subscribed: here, once a first message came."""
        await exchange.watch_my_trades()  # what it brought is in ccxt's cache, handed on next


class _Binance(Dialect):
    async def subscribe(self, exchange: Any) -> None:
        await exchange.authenticate({"type": "spot"})  # the WebSocket API's userDataStream.subscribe.signature


class _Bybit(Dialect):
    async def fetch_by_client_id(self, exchange: Any, symbol: str, coid: str) -> dict[str, Any]:
        # ccxt's fetch_order would send `orderId=None` beside the orderLinkId: the endpoint itself.
        market = exchange.market(symbol)
        answer = await exchange.private_get_v5_order_realtime({"category": "spot", "symbol": market["id"],
                                                               "orderLinkId": coid})
        found = (answer.get("result") or {}).get("list") or []
        if not found:
            raise ccxt_errors.OrderNotFound(f"bybit: no order {coid}")
        return exchange.parse_order(found[0], market)

    def streams(self, ws: dict[str, Any], ws_base: str) -> dict[str, Any]:
        private = ws_base + "/v5/private"
        return {**ws, "public": {**ws.get("public", {}), "spot": ws_base + "/v5/public/spot"},
                "private": {**ws.get("private", {}), "contract": private,
                            "spot": {"unified": private, "nonUnified": private}}}

    async def subscribe(self, exchange: Any) -> None:
        await exchange.authenticate(exchange.urls["api"]["ws"]["private"]["contract"])  # the private `auth`


BINANCE = _Binance(
    # Spot only: without these, ccxt's binance also asks for futures, margin and currency data.
    options={"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False, "fetchMargins": False,
             "fetchOpenOrders": {"warnWithoutSymbol": False}},
    client_id_param="newClientOrderId", lookup_param="origClientOrderId", duplicate_marker="Duplicate order",
    oco_lists=True, trade_client_id="c")
BYBIT = _Bybit(
    # Spot of a unified account; fetchOrder reads order/realtime, which holds an account's newest orders.
    options={"defaultType": "spot", "fetchMarkets": {"types": ["spot"]}, "fetchOrder": {"acknowledged": True}},
    client_id_param="clientOrderId", lookup_param="orderLinkId", duplicate_marker='"retCode":170141',
    oco_lists=False, trade_client_id="orderLinkId", trades_params={"paginate": True})
DIALECTS = {"binance": BINANCE, "bybit": BYBIT}
GENERIC = Dialect(options={}, client_id_param="clientOrderId", lookup_param="clientOrderId",
                  duplicate_marker="Duplicate", oco_lists=False, trade_client_id="clientOrderId")


def dialect(exchange_id: str) -> Dialect:
    return DIALECTS.get(exchange_id, GENERIC)


def point_at(exchange: Any, base_url: str) -> Any:
    """Every REST endpoint of `exchange` on `base_url`, paths kept (a testnet, or `bosun
    exchange-sim`); for ccxt.pro also the spot user streams: Binance's `/ws` (listen key) and
    `/ws-api/v3`, Bybit's `/v5/private` (and its public spot stream)."""
    base_url = base_url.rstrip("/")
    api = exchange.urls["api"]
    for name, url in list(api.items()):
        if isinstance(url, str):
            api[name] = base_url + urlsplit(url).path
    if isinstance(api.get("ws"), dict):
        api["ws"] = dialect(exchange.id).streams(api["ws"], "ws" + base_url.removeprefix("http"))
    return exchange


async def subscribe_user_stream(exchange: Any) -> None:
    """Returns once the exchange confirmed the user stream (Binance spot: the WebSocket API's
    `userDataStream.subscribe.signature`; Bybit: the private websocket's `auth`); elsewhere, once
    a first message came."""
    if not exchange.markets:
        await exchange.load_markets()
    await dialect(exchange.id).subscribe(exchange)
