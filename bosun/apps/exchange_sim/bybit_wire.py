"""Bybit's v5 dialect of the simulator's answers: the `{"retCode", "retMsg", "result", ...}`
envelope, orders, executions, wallet balances and instruments in Bybit's JSON shapes (decimals as
strings, ids and times as strings), and the engine's refusals (Binance's codes) as Bybit's retCodes,
the ones ccxt's bybit maps to its exception classes."""

from __future__ import annotations

from decimal import Decimal

from bosun.apps.exchange_sim.balances import Balances
from bosun.apps.exchange_sim.book import Fill, Order
from bosun.apps.exchange_sim.errors import BinanceError
from bosun.apps.exchange_sim.market import SymbolRules
from bosun.apps.exchange_sim.wire import num

ZERO = Decimal(0)
# The engine's refusals by Binance code (and, where one code means several things, by message).
_BY_MESSAGE = {
    "Account has insufficient balance for requested action.": (170131, "Insufficient balance."),
    "Duplicate order sent.": (170141, "Duplicate clientOrderId."),
    "Order would immediately match and take.": (170210, "New order rejected: a PostOnly order would take."),
    "Filter failure: PRICE_FILTER": (170134, "Order price decimal too long."),
    "Filter failure: LOT_SIZE": (170137, "Order volume decimal too long."),
    "Filter failure: NOTIONAL": (170140, "Order value exceeded lower limit."),
}
_BY_CODE = {
    -2011: (170213, "Order does not exist."), -2013: (170213, "Order does not exist."),
    -1121: (170121, "Invalid symbol."), -2014: (10003, "API key is invalid."),
    -2015: (10003, "API key is invalid."), -1022: (10004, "error sign! the signature is not valid."),
    -1021: (10002, "invalid request, please check your server timestamp or recv_window param"),
}


def ret_code(exc: BinanceError) -> tuple[int, str]:
    """Bybit's (retCode, retMsg) for the engine's refusal; a malformed parameter is 10001."""
    return _BY_MESSAGE.get(exc.msg) or _BY_CODE.get(exc.code) or (10001, f"params error: {exc.msg}")


def envelope(result: object, now_ms: int, code: int = 0, msg: str = "OK") -> dict[str, object]:
    return {"retCode": code, "retMsg": msg, "result": result if result is not None else {}, "retExtInfo": {},
            "time": now_ms}


def instrument(rules: SymbolRules) -> dict[str, object]:
    """An item of GET /v5/market/instruments-info?category=spot."""
    return {"symbol": rules.symbol, "baseCoin": rules.base, "quoteCoin": rules.quote, "innovation": "0",
            "status": "Trading", "marginTrading": "none", "stTag": "0",
            "lotSizeFilter": {"basePrecision": _plain(rules.step_size), "quotePrecision": "0.00000001",
                              "minOrderQty": _plain(rules.min_qty), "maxOrderQty": _plain(rules.max_qty),
                              "minOrderAmt": _plain(rules.min_notional), "maxOrderAmt": "9000000"},
            "priceFilter": {"tickSize": _plain(rules.tick_size)},
            "riskParameters": {"priceLimitRatioX": "0.05", "priceLimitRatioY": "0.05"}}


def side(engine_side: str) -> str:
    return "Buy" if engine_side == "BUY" else "Sell"


def order_status(order: Order) -> str:
    if order.status == "NEW":
        return "Untriggered" if order.waiting else "New"
    if order.status in ("CANCELED", "EXPIRED"):  # an IOC's rest, a market order that could not fill, a cancel
        if order.filled:
            return "PartiallyFilledCanceled"
        return "Deactivated" if order.waiting else "Cancelled"
    return {"PARTIALLY_FILLED": "PartiallyFilled", "FILLED": "Filled"}[order.status]


def _time_in_force(order: Order) -> str:
    if order.type == "LIMIT_MAKER":
        return "PostOnly"
    return order.time_in_force or "IOC"  # a market order is an IOC on Bybit


def order(order: Order) -> dict[str, object]:
    """An order as GET /v5/order/realtime, /v5/order/history and the `order` topic give it."""
    conditional = order.type != order.acts_as
    avg = order.quote_filled / order.filled if order.filled else ZERO
    fee = sum((f.commission for f in order.fills), ZERO)
    return {
        "orderId": str(order.id), "orderLinkId": order.client_id, "blockTradeId": "", "symbol": order.symbol,
        "price": _plain(order.price), "qty": _plain(order.qty), "side": side(order.side), "isLeverage": "0",
        "positionIdx": 0, "orderStatus": order_status(order), "cancelType": "UNKNOWN", "rejectReason": "EC_NoError",
        "avgPrice": _plain(avg) if order.filled else "", "leavesQty": _plain(order.remaining if order.is_open else ZERO),
        "leavesValue": _plain(order.remaining * order.price if order.is_open else ZERO),
        "cumExecQty": _plain(order.filled), "cumExecValue": _plain(order.quote_filled), "cumExecFee": _plain(fee),
        "cumFeeDetail": {order.fills[0].commission_asset: _plain(fee)} if order.fills else {},
        "timeInForce": _time_in_force(order), "orderType": "Market" if order.acts_as == "MARKET" else "Limit",
        "stopOrderType": "tpslOrder" if conditional else "", "orderIv": "",
        "triggerPrice": _plain(order.stop_price), "takeProfit": "0", "stopLoss": "0", "tpTriggerBy": "",
        "slTriggerBy": "", "triggerDirection": _trigger_direction(order) if conditional else 0,
        "triggerBy": "LastPrice" if conditional else "", "lastPriceOnCreated": "", "reduceOnly": False,
        "closeOnTrigger": False, "placeType": "", "smpType": "None", "smpGroup": 0, "smpOrderId": "",
        "marketUnit": "quoteCoin" if order.quote_qty else ("baseCoin" if order.acts_as == "MARKET" else ""),
        "createdTime": str(order.time_ms), "updatedTime": str(order.update_ms),
    }


def _trigger_direction(order: Order) -> int:
    """1: triggered when the price rises to the trigger, 2: when it falls to it."""
    falling = (order.side == "SELL") == order.type.startswith("STOP_LOSS")
    return 2 if falling else 1


def execution(order: Order, fill: Fill, leaves: Decimal, fee_rate: Decimal) -> dict[str, object]:
    """A fill as GET /v5/execution/list and the `execution` topic give it."""
    return {
        "category": "spot", "symbol": fill.symbol, "orderId": str(order.id), "orderLinkId": order.client_id,
        "side": side(fill.side), "orderPrice": _plain(order.price), "orderQty": _plain(order.qty),
        "leavesQty": _plain(leaves), "orderType": "Market" if order.acts_as == "MARKET" else "Limit",
        "stopOrderType": "tpslOrder" if order.type != order.acts_as else "", "execFee": _plain(fill.commission),
        "feeCurrency": fill.commission_asset, "execId": str(fill.trade_id), "execPrice": _plain(fill.price),
        "execQty": _plain(fill.qty), "execType": "Trade", "execValue": _plain(fill.quote_qty),
        "feeRate": _plain(fee_rate), "tradeIv": "", "markIv": "", "markPrice": "", "indexPrice": "",
        "underlyingPrice": "", "blockTradeId": "", "closedSize": "", "isLeverage": "0", "seq": fill.trade_id,
        "isMaker": fill.maker, "execTime": str(fill.time_ms),
    }


def wallet(balances: Balances, assets: list[str]) -> dict[str, object]:
    """The unified account: GET /v5/account/wallet-balance's item, and the `wallet` topic's."""
    coins = []
    for asset in assets:
        free, locked = balances.free.get(asset, ZERO), balances.locked.get(asset, ZERO)
        total = _plain(free + locked)
        coins.append({"coin": asset, "equity": total, "walletBalance": total, "locked": _plain(locked),
                      "usdValue": "", "borrowAmount": "0", "accruedInterest": "0", "totalOrderIM": "0",
                      "totalPositionIM": "0", "totalPositionMM": "0", "unrealisedPnl": "0", "cumRealisedPnl": "0",
                      "bonus": "0", "collateralSwitch": True, "marginCollateral": True, "spotHedgingQty": "0"})
    return {"accountType": "UNIFIED", "accountIMRate": "0", "accountMMRate": "0", "accountLTV": "0",
            "totalEquity": "", "totalWalletBalance": "", "totalMarginBalance": "", "totalAvailableBalance": "",
            "totalPerpUPL": "0", "totalInitialMargin": "0", "totalMaintenanceMargin": "0", "coin": coins}


def _plain(value: Decimal) -> str:
    return num(value).rstrip("0").rstrip(".") if value else "0"
