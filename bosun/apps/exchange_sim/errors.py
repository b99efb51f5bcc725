"""Binance's error answers: an HTTP status and `{"code": <negative int>, "msg": ...}`, the shape ccxt
maps to its exception classes by code and message."""

from __future__ import annotations


class BinanceError(Exception):
    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status, self.code, self.msg = status, code, msg

    def body(self) -> dict[str, object]:
        return {"code": self.code, "msg": self.msg}


def bad_param(name: str) -> BinanceError:
    return BinanceError(400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def illegal_value(name: str) -> BinanceError:
    return BinanceError(400, -1100, f"Illegal characters found in parameter '{name}'; legal range is "
                                    f"'^([0-9]{{1,20}})(\\.[0-9]{{1,20}})?$'.")


def filter_failure(name: str) -> BinanceError:
    return BinanceError(400, -1013, f"Filter failure: {name}")


INSUFFICIENT_BALANCE = (400, -2010, "Account has insufficient balance for requested action.")
DUPLICATE_ORDER = (400, -2010, "Duplicate order sent.")
WOULD_TAKE = (400, -2010, "Order would immediately match and take.")  # a LIMIT_MAKER
UNKNOWN_ORDER = (400, -2011, "Unknown order sent.")
NO_SUCH_ORDER = (400, -2013, "Order does not exist.")
INVALID_SYMBOL = (400, -1121, "Invalid symbol.")


def error(spec: tuple[int, int, str]) -> BinanceError:
    return BinanceError(*spec)
