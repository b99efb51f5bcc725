"""Orders, fills, balances and rules in the JSON shapes of Binance's spot API: decimals as strings
with 8 places, times in ms."""

from __future__ import annotations

from decimal import Decimal

from bosun.apps.exchange_sim.balances import Balances
from bosun.apps.exchange_sim.book import ORDER_TYPES, Fill, Order, OrderList
from bosun.apps.exchange_sim.market import SymbolRules

PLACES = Decimal("0.00000001")


def num(value: Decimal) -> str:
    return format(value.quantize(PLACES), "f")


def _plain(value: Decimal) -> str:
    return format(value.normalize(), "f")


def symbol_info(rules: SymbolRules) -> dict[str, object]:
    return {
        "symbol": rules.symbol, "status": "TRADING", "baseAsset": rules.base, "baseAssetPrecision": 8,
        "quoteAsset": rules.quote, "quotePrecision": 8, "quoteAssetPrecision": 8, "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8, "orderTypes": list(ORDER_TYPES), "icebergAllowed": False,
        "ocoAllowed": True, "otoAllowed": False, "quoteOrderQtyMarketAllowed": True, "allowTrailingStop": False,
        "cancelReplaceAllowed": False, "isSpotTradingAllowed": True, "isMarginTradingAllowed": False,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": num(rules.min_price), "maxPrice": num(rules.max_price),
             "tickSize": _plain(rules.tick_size)},
            {"filterType": "LOT_SIZE", "minQty": num(rules.min_qty), "maxQty": num(rules.max_qty),
             "stepSize": _plain(rules.step_size)},
            {"filterType": "NOTIONAL", "minNotional": num(rules.min_notional), "applyMinToMarket": True,
             "maxNotional": "9000000.00000000", "applyMaxToMarket": False, "avgPriceMins": 5},
            {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
        ],
        "permissions": [], "permissionSets": [["SPOT"]], "defaultSelfTradePreventionMode": "NONE",
        "allowedSelfTradePreventionModes": ["NONE"],
    }


def _common(order: Order) -> dict[str, object]:
    return {
        "symbol": order.symbol, "orderId": order.id, "orderListId": order.list_id, "clientOrderId": order.client_id,
        "price": num(order.price), "origQty": num(order.qty), "executedQty": num(order.filled),
        "cummulativeQuoteQty": num(order.quote_filled), "status": order.status,
        "timeInForce": order.time_in_force or "GTC", "type": order.type, "side": order.side,
    }


def order_info(order: Order) -> dict[str, object]:
    """GET /api/v3/order and each item of GET /api/v3/openOrders."""
    return {**_common(order), "stopPrice": num(order.stop_price), "icebergQty": num(Decimal(0)),
            "time": order.time_ms, "updateTime": order.update_ms, "isWorking": not order.waiting,
            "workingTime": order.time_ms, "origQuoteOrderQty": num(order.quote_qty),
            "selfTradePreventionMode": "NONE"}


def order_placed(order: Order, fills: list[Fill], resp_type: str) -> dict[str, object]:
    """POST /api/v3/order, as newOrderRespType ACK, RESULT or FULL asks."""
    ack = {"symbol": order.symbol, "orderId": order.id, "orderListId": order.list_id, "clientOrderId": order.client_id,
           "transactTime": order.update_ms}
    if resp_type == "ACK":
        return ack
    result = {**ack, **_common(order), "origQuoteOrderQty": num(order.quote_qty), "workingTime": order.time_ms,
              "selfTradePreventionMode": "NONE"}
    if order.type != order.acts_as:
        result["stopPrice"] = num(order.stop_price)
    if resp_type == "FULL":
        result["fills"] = [{"price": num(f.price), "qty": num(f.qty), "commission": num(f.commission),
                            "commissionAsset": f.commission_asset, "tradeId": f.trade_id} for f in fills]
    return result


def order_canceled(order: Order, now_ms: int) -> dict[str, object]:
    """DELETE /api/v3/order: `clientOrderId` is the cancel request's, `origClientOrderId` the order's."""
    return {**_common(order), "clientOrderId": order.cancel_client_id, "origClientOrderId": order.client_id,
            "transactTime": now_ms,
            "origQuoteOrderQty": num(order.quote_qty), "selfTradePreventionMode": "NONE",
            **({"stopPrice": num(order.stop_price)} if order.type != order.acts_as else {})}


def order_list(order_list: OrderList, now_ms: int, reports: list[dict[str, object]] | None = None
               ) -> dict[str, object]:
    """An OCO order list: GET /api/v3/orderList; with `reports` (each leg's), POST and DELETE."""
    done = not order_list.is_open
    answer: dict[str, object] = {
        "orderListId": order_list.id, "contingencyType": "OCO",
        "listStatusType": "ALL_DONE" if done else "EXEC_STARTED",
        "listOrderStatus": "ALL_DONE" if done else "EXECUTING", "listClientOrderId": order_list.client_id,
        "transactionTime": now_ms, "symbol": order_list.symbol,
        "orders": [{"symbol": o.symbol, "orderId": o.id, "clientOrderId": o.client_id} for o in order_list.legs]}
    if reports is not None:
        answer["orderReports"] = reports
    return answer


def my_trade(fill: Fill) -> dict[str, object]:
    return {"symbol": fill.symbol, "id": fill.trade_id, "orderId": fill.order_id, "orderListId": -1,
            "price": num(fill.price), "qty": num(fill.qty), "quoteQty": num(fill.quote_qty),
            "commission": num(fill.commission), "commissionAsset": fill.commission_asset, "time": fill.time_ms,
            "isBuyer": fill.side == "BUY", "isMaker": fill.maker, "isBestMatch": True}


def account(balances: Balances, now_ms: int, fee_rate: Decimal) -> dict[str, object]:
    bps = int(fee_rate * 10_000)
    return {
        "makerCommission": bps, "takerCommission": bps, "buyerCommission": 0, "sellerCommission": 0,
        "commissionRates": {"maker": num(fee_rate), "taker": num(fee_rate), "buyer": num(Decimal(0)),
                            "seller": num(Decimal(0))},
        "canTrade": True, "canWithdraw": False, "canDeposit": False, "brokered": False,
        "requireSelfTradePrevention": False, "preventSor": False, "updateTime": now_ms, "accountType": "SPOT",
        "balances": [{"asset": a, "free": num(balances.free.get(a, Decimal(0))),
                      "locked": num(balances.locked.get(a, Decimal(0)))} for a in balances.assets()],
        "permissions": ["SPOT"], "uid": 1,
    }


def execution_report(order: Order, exec_type: str, fill: Fill | None, now_ms: int) -> dict[str, object]:
    """The user stream's `executionReport` for one change of an order. For a cancel, as on Binance,
    `c` is the cancel request's client id and `C` the order's."""
    client_id, orig_client_id = ((order.cancel_client_id, order.client_id) if exec_type == "CANCELED"
                                 else (order.client_id, ""))
    return {
        "e": "executionReport", "E": now_ms, "s": order.symbol, "c": client_id, "S": order.side,
        "o": order.type, "f": order.time_in_force or "GTC", "q": num(order.qty), "p": num(order.price),
        "P": num(order.stop_price), "F": num(Decimal(0)), "g": order.list_id, "C": orig_client_id, "x": exec_type,
        "X": order.status, "r": "NONE", "i": order.id, "l": num(fill.qty if fill else Decimal(0)),
        "z": num(order.filled), "L": num(fill.price if fill else Decimal(0)),
        "n": num(fill.commission if fill else Decimal(0)), "N": fill.commission_asset if fill else None,
        "T": fill.time_ms if fill else now_ms, "t": fill.trade_id if fill else -1, "I": 0,
        "w": order.is_open and not order.waiting, "m": fill.maker if fill else False, "M": False,
        "O": order.time_ms, "Z": num(order.quote_filled), "Y": num(fill.quote_qty if fill else Decimal(0)),
        "Q": num(order.quote_qty), "W": order.time_ms, "V": "NONE",
    }


def account_position(balances: Balances, assets: set[str], now_ms: int) -> dict[str, object]:
    return {"e": "outboundAccountPosition", "E": now_ms, "u": now_ms,
            "B": [{"a": a, "f": num(balances.free.get(a, Decimal(0))), "l": num(balances.locked.get(a, Decimal(0)))}
                  for a in sorted(assets)]}
