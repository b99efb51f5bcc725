"""Who may call: the X-MBX-APIKEY header names the key, an HMAC-SHA256 of the request's
parameters under the secret signs it, and its timestamp must be within recvWindow of the server's
clock (Binance's rules and error codes)."""

from __future__ import annotations

import hashlib
import hmac
import re

from bosun.apps.exchange_sim.errors import BinanceError

DEFAULT_RECV_WINDOW = 5_000
MAX_RECV_WINDOW = 60_000
AHEAD_MS = 1_000  # a request may be stamped this far ahead of the server's clock
_SIGNATURE = re.compile(r"(?:^|&)signature=([^&]*)")


class Credentials:
    def __init__(self, api_key: str, secret: str) -> None:
        if not api_key or not secret:
            raise ValueError("the simulator needs an API key and a secret")
        self._key, self._secret = api_key, secret.encode()

    def __repr__(self) -> str:  # never the key or the secret
        return "Credentials(<hidden>)"

    def check_key(self, api_key: str | None) -> None:
        if not api_key:
            raise BinanceError(401, -2014, "API-key format invalid.")
        if not hmac.compare_digest(api_key, self._key):
            raise BinanceError(401, -2015, "Invalid API-key, IP, or permissions for action.")

    def check_signature(self, payload: str, signature: str | None) -> None:
        if not signature:
            raise BinanceError(400, -1102,
                               "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.")
        expected = hmac.new(self._secret, payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature.lower()):
            raise BinanceError(400, -1022, "Signature for this request is not valid.")


def split_signature(query: str, body: str) -> tuple[str, str | None]:
    """What was signed (the query string, then the body, without `signature=`) and the signature."""
    signature = None
    parts = []
    for part in (query, body):
        match = _SIGNATURE.search(part)
        if match:
            signature = match.group(1)
            part = (part[: match.start()] + part[match.end():]).lstrip("&")
        parts.append(part)
    return "".join(parts), signature


def check_time(timestamp: str | None, recv_window: str | None, now_ms: int) -> None:
    if not timestamp or not timestamp.isdigit():
        raise BinanceError(400, -1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed.")
    window = DEFAULT_RECV_WINDOW
    if recv_window is not None:
        if not recv_window.isdigit():
            raise BinanceError(400, -1100, "Illegal characters found in parameter 'recvWindow'.")
        window = int(recv_window)
        if window > MAX_RECV_WINDOW:
            raise BinanceError(400, -1131, "recvWindow must be less than 60000")
    stamp = int(timestamp)
    if stamp > now_ms + AHEAD_MS:
        raise BinanceError(400, -1021, "Timestamp for this request was 1000ms ahead of the server's time.")
    if now_ms - stamp > window:
        raise BinanceError(400, -1021, "Timestamp for this request is outside of the recvWindow.")
