"""Venue credentials: only execution holds them, and it reads them from its environment by
name. A live venue on exchange `binance` (its ccxt id) takes BOSUN_BINANCE_API_KEY,
BOSUN_BINANCE_API_SECRET and, where the exchange wants one, BOSUN_BINANCE_API_PASSWORD
(ccxt's apiKey, secret and password). `bosun up` gives variables of this shape to execution
and to no other service."""

from __future__ import annotations

import re

_CREDENTIAL_ENV = re.compile(r"BOSUN_[A-Z0-9]+_API_(KEY|SECRET|PASSWORD)")


def is_venue_credential(name: str) -> bool:
    return _CREDENTIAL_ENV.fullmatch(name) is not None
