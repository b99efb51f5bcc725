"""Faults switched on per test through `POST /sim/faults` (a JSON body of `Faults`; `DELETE
/sim/faults` clears them). Counted faults hit the next N matching requests, then stop."""

from __future__ import annotations

from typing import Literal

import msgspec

from bosun.runtime.config import ConfigStruct


class Faults(ConfigStruct):
    latency_ms: int = 0  # /api/v3 answers this late (after the request took effect)
    server_errors: int = 0  # the next N /api/v3 requests answer `server_error_status`, untouched
    server_error_status: int = 503
    throttles: int = 0  # the next N /api/v3 requests answer `throttle_status` with Retry-After
    throttle_status: Literal[429, 418] = 429
    retry_after_s: int = 1
    drop_order_responses: int = 0  # the next N accepted order placements: connection cut, no answer
    stream_drop_after: int = -1  # user streams cut (no close frame) after N more events; -1: never
    duplicate_reports: bool = False  # every executionReport sent twice
    reorder_reports: bool = False  # the executionReports of one step sent newest first
    reject_orders: Literal["", "insufficient_balance", "PRICE_FILTER", "LOT_SIZE", "NOTIONAL"] = ""
    paths: tuple[str, ...] = ()  # the REST faults hit only these paths, e.g. "/api/v3/order" (default: all)

    def __post_init__(self) -> None:
        for name in ("latency_ms", "server_errors", "throttles", "retry_after_s", "drop_order_responses"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 500 <= self.server_error_status <= 599:
            raise ValueError(f"server_error_status must be a 5xx status, got {self.server_error_status}")
        if self.latency_ms > 60_000:
            raise ValueError(f"latency_ms must be at most 60000, got {self.latency_ms}")


class FaultState:
    """The faults in force and what is left of the counted ones."""

    def __init__(self) -> None:
        self.set(Faults())

    def set(self, faults: Faults) -> None:
        self.faults = faults
        self.left = {"server_errors": faults.server_errors, "throttles": faults.throttles,
                     "drop_order_responses": faults.drop_order_responses,
                     "stream_drop_after": faults.stream_drop_after}

    def applies(self, path: str) -> bool:
        return not self.faults.paths or path in self.faults.paths

    def take(self, name: str) -> bool:
        """Use one of a counted fault: whether it was still on."""
        if self.left[name] > 0:
            self.left[name] -= 1
            return True
        return False


def decode_faults(body: bytes) -> Faults:
    try:
        return msgspec.json.decode(body or b"{}", type=Faults)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ValueError(f"faults: {exc}") from None
