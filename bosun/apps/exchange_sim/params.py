"""A request's parameters (query string and form body) read into checked values, with Binance's
errors for what is missing or malformed."""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation

from bosun.apps.exchange_sim.book import ACTS_AS, ORDER_TYPES, TIMES_IN_FORCE, TRIGGERED
from bosun.apps.exchange_sim.errors import BinanceError, bad_param, illegal_value

_DECIMAL = re.compile(r"^[0-9]{1,20}(\.[0-9]{1,20})?$")
_CLIENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,36}$")
ZERO = Decimal(0)


class Params:
    def __init__(self, values: Mapping[str, str]) -> None:
        self.values = values

    def text(self, name: str) -> str:
        value = self.values.get(name)
        if not value:
            raise bad_param(name)
        return value

    def optional(self, name: str) -> str | None:
        return self.values.get(name) or None

    def decimal(self, name: str, required: bool = False) -> Decimal:
        value = self.values.get(name)
        if not value:
            if required:
                raise bad_param(name)
            return ZERO
        if not _DECIMAL.match(value):
            raise illegal_value(name)
        try:
            return Decimal(value)
        except InvalidOperation:
            raise illegal_value(name) from None

    def integer(self, name: str, default: int | None = None, low: int = 0, high: int = 2**63) -> int | None:
        value = self.values.get(name)
        if not value:
            return default
        if not value.isdigit() or not low <= int(value) <= high:
            raise BinanceError(400, -1100, f"Illegal characters found in parameter '{name}'; legal range is "
                                           f"'{low}' to '{high}'.")
        return int(value)

    def client_id(self, name: str) -> str | None:
        value = self.optional(name)
        if value is not None and not _CLIENT_ID.match(value):
            raise BinanceError(400, -1100, f"Illegal characters found in parameter '{name}'; legal range is "
                                           f"'^[\\.A-Z\\:/a-z0-9_-]{{1,36}}$'.")
        return value

    def order(self) -> dict[str, object]:
        """The keyword arguments of Exchange.place for POST /api/v3/order."""
        side, type = self.text("side"), self.text("type")
        if side not in ("BUY", "SELL"):
            raise BinanceError(400, -1117, "Invalid side.")
        if type not in ORDER_TYPES:
            raise BinanceError(400, -1116, "Invalid orderType.")
        limit = ACTS_AS.get(type, type) == "LIMIT"
        # LIMIT_MAKER takes no timeInForce: it rests until filled or cancelled.
        tif = "GTC" if type == "LIMIT_MAKER" else self.optional("timeInForce") or ""
        if limit and tif not in TIMES_IN_FORCE:
            raise BinanceError(400, -1115, "Invalid timeInForce.") if tif else bad_param("timeInForce")
        quote_qty = self.decimal("quoteOrderQty") if type == "MARKET" else ZERO
        return {"symbol": self.text("symbol"), "side": side, "type": type, "time_in_force": tif if limit else "",
                "qty": self.decimal("quantity", required=not quote_qty), "price": self.decimal("price", required=limit),
                "stop_price": self.decimal("stopPrice", required=type in TRIGGERED), "quote_qty": quote_qty,
                "client_id": self.client_id("newClientOrderId")}

    def oco(self) -> dict[str, object]:
        """The keyword arguments of Exchange.place_oco for POST /api/v3/orderList/oco."""
        side = self.text("side")
        if side not in ("BUY", "SELL"):
            raise BinanceError(400, -1117, "Invalid side.")
        legs = {}
        for leg in ("above", "below"):
            type = self.text(f"{leg}Type")
            if type not in TRIGGERED:
                raise BinanceError(400, -1116, f"Invalid {leg}Type.")
            limit = TRIGGERED[type] == "LIMIT"
            tif = self.optional(f"{leg}TimeInForce") or ""
            if limit and tif not in TIMES_IN_FORCE:
                raise BinanceError(400, -1115, "Invalid timeInForce.") if tif else bad_param(f"{leg}TimeInForce")
            legs[leg] = {"type": type, "time_in_force": tif if limit else "",
                         "price": self.decimal(f"{leg}Price", required=limit),
                         "stop_price": self.decimal(f"{leg}StopPrice", required=True),
                         "client_id": self.client_id(f"{leg}ClientOrderId")}
        return {"symbol": self.text("symbol"), "side": side, "qty": self.decimal("quantity", required=True),
                "list_client_id": self.client_id("listClientOrderId"), **legs}

    def list_ref(self) -> tuple[int | None, str | None]:
        """orderListId and/or (listClientOrderId on DELETE, origClientOrderId on GET): which order list."""
        list_id = self.integer("orderListId")
        client_id = self.client_id("listClientOrderId") or self.client_id("origClientOrderId")
        if list_id is None and client_id is None:
            raise BinanceError(400, -1102, "Param 'listClientOrderId' or 'orderListId' must be sent, but both were "
                                           "empty/null!")
        return list_id, client_id

    def order_ref(self) -> tuple[int | None, str | None]:
        """orderId and/or origClientOrderId: which order a GET or DELETE means."""
        order_id, client_id = self.integer("orderId"), self.client_id("origClientOrderId")
        if order_id is None and client_id is None:
            raise BinanceError(400, -1102,
                               "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
        return order_id, client_id
