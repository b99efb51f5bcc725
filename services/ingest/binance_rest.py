"""Binance REST kline history (`GET /api/v3/klines`): the closed bars a websocket missed while
ingest was down or disconnected, bounded to the newest `max_bars` of the gap."""

from __future__ import annotations

import logging
import math

import httpx
import msgspec

from proto.events import Bar
from services.ingest.bars import parse_interval
from services.ingest.binance_ws import kline_bar

log = logging.getLogger(__name__)

PAGE = 1000  # klines per request: Binance's largest `limit`
TIMEOUT_S = 10.0
NS_PER_MS = 1_000_000


class HistoryUnavailable(RuntimeError):
    pass


class KlineHistory:
    """Closed klines of one interval after a given time, at most `max_bars` (the newest of the
    gap: what strategies look at), in ceil(max_bars / 1000) requests at most."""

    def __init__(self, base_url: str, interval: str, *, max_bars: int, venue: str = "binance",
                 client: httpx.AsyncClient | None = None) -> None:
        if max_bars < 1:
            raise ValueError(f"max_bars must be >= 1, got {max_bars}")
        self.url = f"{base_url.rstrip('/')}/api/v3/klines"
        self.interval = interval
        self.step_ns = parse_interval(interval)
        self.max_bars = max_bars
        self.venue = venue
        self._client = client or httpx.AsyncClient(timeout=TIMEOUT_S)
        self.requests = 0

    async def aclose(self) -> None:
        await self._client.aclose()

    async def closed_bars(self, symbol: str, after_ns: int, now_ns: int) -> list[Bar]:
        """The bars of `symbol` that open at or after `after_ns` and have closed by `now_ns`,
        oldest first; the newest `max_bars` of them when the gap is longer (said in the log)."""
        first_open = max(after_ns, now_ns - now_ns % self.step_ns - self.max_bars * self.step_ns)
        if first_open > after_ns:
            log.warning("ingest: the %s gap of %s since %d is %d bars, more than the %d filled from REST; "
                        "filling the newest", self.interval, symbol, after_ns,
                        (now_ns - after_ns) // self.step_ns, self.max_bars)
        bars: list[Bar] = []
        start = first_open
        for _ in range(math.ceil(self.max_bars / PAGE)):
            limit = min(PAGE, self.max_bars - len(bars))
            rows = await self._get(symbol, start, limit)
            for row in rows:
                bar = self._bar(symbol, row)
                if bar.ts_event > now_ns:  # still open: its values will change
                    return bars
                bars.append(bar)
            if len(rows) < limit or len(bars) >= self.max_bars:
                break
            start = bars[-1].ts_open + self.step_ns
        return bars

    async def _get(self, symbol: str, start_ns: int, limit: int) -> list[list[object]]:
        params = {"symbol": symbol, "interval": self.interval, "startTime": start_ns // NS_PER_MS, "limit": limit}
        self.requests += 1
        try:
            response = await self._client.get(self.url, params=params)
            response.raise_for_status()
            rows = msgspec.json.decode(response.content)
        except (httpx.HTTPError, msgspec.DecodeError) as exc:
            raise HistoryUnavailable(f"Binance kline history {self.url} for {symbol}: {exc}") from None
        if not isinstance(rows, list) or not all(isinstance(r, list) and len(r) >= 7 for r in rows):
            raise HistoryUnavailable(f"Binance kline history {self.url} for {symbol}: not a list of klines "
                                     f"(of at least 7 fields): {response.text[:200]!r}")
        return rows

    def _bar(self, symbol: str, row: list[object]) -> Bar:
        # The REST row's fields are the websocket kline's, in a list: one parser for both.
        k = {"t": row[0], "o": row[1], "h": row[2], "l": row[3], "c": row[4], "v": row[5], "T": row[6],
             "s": symbol, "i": self.interval}
        try:
            return kline_bar(k, self.venue)
        except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
            raise HistoryUnavailable(f"Binance kline history for {symbol} has a bad kline {row!r}: {exc}") from None
