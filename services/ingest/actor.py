"""The ingest actor: each bar, trade or quote from a source becomes the event itself plus the
newest price of its venue.symbol (KV `prices`), which every other service reads. A quote's
snapshot keeps the newest traded price (the mid before any) and adds the best bid and ask.

It never publishes market data older than what the platform already has per venue.symbol
(`resume` tells it what that is at start), so a restart or a reconnect's overlap stores no
bar twice, and KV `prices` never steps back in time."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from bosun.runtime.actor import Actor, Input, Outbox
from bosun.runtime.clock import Clock
from proto.events import Bar, FundingRateSettled, PriceSnapshot, Quote, Trade
from proto.subjects import price_key
from services.ingest.funding import FundingSettler, MarkPriceUpdate
from services.ingest.newest import Newest, Stored


class MarketDataActor(Actor):
    """A source, not a consumer: the source loop calls `on_bar` / `on_trade` directly."""

    name: ClassVar[str] = "ingest"

    def __init__(self, clock: Clock, out: Outbox) -> None:
        super().__init__(clock, out)
        self._last: dict[tuple[str, str], PriceSnapshot] = {}
        self._newest = Newest()
        self._funding = FundingSettler()

    def resume(self, stored: Stored) -> None:
        """Start from what the platform holds (before the first event)."""
        self._newest = Newest(stored)
        for key, snapshot in stored.prices.items():
            last = self._last.get(key)
            if last is None or snapshot.ts_event > last.ts_event:
                self._last[key] = snapshot

    def inputs(self) -> Sequence[Input]:
        return []

    def on_bar(self, bar: Bar) -> None:
        if not self._newest.admit(bar):
            return
        last = self._last.get((bar.venue, bar.symbol))
        if last is not None and bar.ts_event < last.ts_event:
            self.out.publish(bar)  # a trade of the next bar came first (live): the price it set is newer
            return
        self._bar(bar)

    def on_events(self, events: Sequence[Bar | Trade | Quote | MarkPriceUpdate | FundingRateSettled]) -> None:
        """A batch from the source, in order; the binding puts only the newest price per key."""
        for event in events:
            kind = type(event)  # not isinstance: a miss through msgspec's metaclass costs ~0.4 us
            if kind is Bar:
                self.on_bar(event)  # type: ignore[arg-type]
            elif kind is Trade:
                self.on_trade(event)  # type: ignore[arg-type]
            elif kind is Quote:
                self.on_quote(event)  # type: ignore[arg-type]
            else:
                self.on_funding(event)  # type: ignore[arg-type]

    def on_funding(self, event: MarkPriceUpdate | FundingRateSettled) -> None:
        """A funding rate from history, published as it is; a mark price update, once its funding time has passed."""
        settled = event if type(event) is FundingRateSettled else self._funding.on_update(event)
        if settled is not None:
            self.out.publish(settled)

    def on_quote(self, quote: Quote) -> None:
        if not self._newest.admit(quote):
            return
        key = (quote.venue, quote.symbol)
        last = self._last.get(key)
        self.out.publish(quote)
        if last is not None and quote.ts_event < last.ts_event:
            return  # a bar closed after it is stored already: the price does not step back
        price = (quote.bid + quote.ask) / 2 if last is None else last.price
        snapshot = PriceSnapshot(id=quote.id, ts_event=quote.ts_event, venue=quote.venue, symbol=quote.symbol,
                                 price=price, bid=quote.bid, ask=quote.ask)
        self._last[key] = snapshot
        self.out.publish(snapshot)

    def on_trade(self, trade: Trade) -> None:
        if not self._newest.admit(trade):
            return
        last = self._last.get((trade.venue, trade.symbol))
        if last is not None and trade.ts_event < last.ts_event:
            self.out.publish(trade)  # a bar closed after it is stored already
            return
        self._trade(trade)

    def _bar(self, bar: Bar) -> None:
        self.out.publish(bar)
        snapshot = PriceSnapshot(id=f"{bar.venue}.{bar.symbol}.{bar.ts_event}", ts_event=bar.ts_event,
                                 venue=bar.venue, symbol=bar.symbol, price=bar.close,
                                 open=bar.open, high=bar.high, low=bar.low)
        self._last[(bar.venue, bar.symbol)] = snapshot  # inline, not a helper shared with _trade: a call per bar
        self.out.publish(snapshot)

    def _trade(self, trade: Trade) -> None:
        self.out.publish(trade)
        # The trade's own id: two trades in the same millisecond are two different prices.
        snapshot = PriceSnapshot(id=trade.id, ts_event=trade.ts_event, venue=trade.venue, symbol=trade.symbol,
                                 price=trade.price)
        self._last[(trade.venue, trade.symbol)] = snapshot
        self.out.publish(snapshot)

    def status(self) -> dict[str, dict[str, object]]:
        """The last price and its event time per `venue.symbol`."""
        return {price_key(*key): {"price": str(s.price), "ts_event": s.ts_event} for key, s in self._last.items()}


class InOrderMarketData(MarketDataActor):
    """Ingest in a backtest, whose files are merged by time: nothing old or repeated can come, so no
    event is checked against the newest. (Class attributes, not instance ones: an actor holding its
    own bound methods is a cycle that outlives its run.)"""

    on_bar = MarketDataActor._bar  # type: ignore[assignment]
    on_trade = MarketDataActor._trade  # type: ignore[assignment]
