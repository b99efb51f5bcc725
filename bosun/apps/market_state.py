"""What the platform already holds of the market, read from NATS when ingest starts: the last
bar and trade stored in MARKET and the price in KV `prices`, per venue.symbol. The ingest actor
resumes from it (services/ingest/newest.py holds the rule)."""

from __future__ import annotations

import contextlib
import logging
from typing import TypeVar

import nats.errors
from nats.js import JetStreamContext, api

from proto import codec
from proto import events as ev
from proto import subjects as sj
from services.ingest.newest import Key, Stored

log = logging.getLogger(__name__)

E = TypeVar("E", ev.Bar, ev.Trade, ev.PriceSnapshot)
MAX_MARKETS = 10_000  # venue.symbol subjects read per kind at start, at most: one request each
# MARKET messages before the last trade of a venue.symbol searched for the other trades of its
# millisecond (they were published in the same batch or the one before: BATCH is 500).
SAME_TIME_LOOKBACK = 2_000
READ_TIMEOUT_S = 5.0


async def stored_market(js: JetStreamContext) -> Stored:
    bars = await _last_per_subject(js, "MARKET", sj.BARS, ev.Bar)
    trades = await _last_per_subject(js, "MARKET", sj.TRADES, ev.Trade)
    prices = await _last_per_subject(js, f"KV_{sj.PRICES_BUCKET}", sj.PRICES, ev.PriceSnapshot)
    return Stored(bars={key: bar for key, (bar, _) in bars.items()},
                  trades={key: trade for key, (trade, _) in trades.items()},
                  same_time_trades={key: await _same_time_trades(js, trade, seq)
                                    for key, (trade, seq) in trades.items()},
                  prices={key: price for key, (price, _) in prices.items()})


async def _same_time_trades(js: JetStreamContext, last: ev.Trade, last_seq: int) -> frozenset[str]:
    """The ids of the stored trades of `last`'s venue.symbol and millisecond, up to it."""
    config = api.ConsumerConfig(deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
                                opt_start_seq=max(1, last_seq - SAME_TIME_LOOKBACK))
    sub = await js.subscribe(sj.subject_for(last), stream="MARKET", ordered_consumer=True, config=config)
    ids = {last.id}
    try:
        while True:
            msg = await sub.next_msg(timeout=READ_TIMEOUT_S)
            if msg.metadata.sequence.stream >= last_seq:
                return frozenset(ids)
            with contextlib.suppress(Exception):  # one that no longer decodes is no trade of that time
                trade = codec.decode(msg.data, ev.Trade)
                if trade.ts_event == last.ts_event:
                    ids.add(trade.id)
    except nats.errors.TimeoutError:  # the last one aged out meanwhile: what was read is what there is
        return frozenset(ids)
    finally:
        await sub.unsubscribe()


async def _last_per_subject(js: JetStreamContext, stream: str, pattern: str,
                            kind: type[E]) -> dict[Key, tuple[E, int]]:
    """The last message on each subject of `pattern`, decoded, with its stream sequence."""
    info = await js.stream_info(stream, subjects_filter=pattern)
    subjects = sorted(info.state.subjects or {})
    if len(subjects) > MAX_MARKETS:
        raise RuntimeError(f"ingest: {stream} holds {len(subjects)} subjects on {pattern}, more than the "
                           f"{MAX_MARKETS} it reads at start to resume")
    found: dict[Key, tuple[E, int]] = {}
    for subject in subjects:
        msg = await js.get_last_msg(stream, subject)
        if msg.headers and msg.headers.get("KV-Operation"):
            continue  # a deleted price: nothing to resume from
        try:
            event = codec.decode(msg.data or b"", kind)
        except Exception as exc:  # a stored message of the past that no longer decodes: not a bound
            log.warning("ingest: ignoring the last message on %s when resuming: %s", subject, exc)
            continue
        found[(event.venue, event.symbol)] = (event, msg.seq or 0)
    return found
