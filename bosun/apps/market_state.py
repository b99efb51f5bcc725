"""What the platform already holds of the market, read from NATS when ingest starts: the last
bar and trade stored in MARKET and the price in KV `prices`, per venue.symbol. The ingest actor
resumes from it (services/ingest/newest.py holds the rule)."""

from __future__ import annotations

import logging
from typing import TypeVar

from nats.js import JetStreamContext

from proto import codec
from proto import events as ev
from proto import subjects as sj
from services.ingest.newest import Key, Stored

log = logging.getLogger(__name__)

E = TypeVar("E", ev.Bar, ev.Trade, ev.PriceSnapshot)
MAX_MARKETS = 10_000  # venue.symbol subjects read per kind at start, at most: one request each


async def stored_market(js: JetStreamContext) -> Stored:
    return Stored(bars=await _last_per_subject(js, "MARKET", sj.BARS, ev.Bar),
                  trades=await _last_per_subject(js, "MARKET", sj.TRADES, ev.Trade),
                  prices=await _last_per_subject(js, f"KV_{sj.PRICES_BUCKET}", sj.PRICES, ev.PriceSnapshot))


async def _last_per_subject(js: JetStreamContext, stream: str, pattern: str, kind: type[E]) -> dict[Key, E]:
    info = await js.stream_info(stream, subjects_filter=pattern)
    subjects = sorted(info.state.subjects or {})
    if len(subjects) > MAX_MARKETS:
        raise RuntimeError(f"ingest: {stream} holds {len(subjects)} subjects on {pattern}, more than the "
                           f"{MAX_MARKETS} it reads at start to resume")
    found: dict[Key, E] = {}
    for subject in subjects:
        msg = await js.get_last_msg(stream, subject)
        if msg.headers and msg.headers.get("KV-Operation"):
            continue  # a deleted price: nothing to resume from
        try:
            event = codec.decode(msg.data or b"", kind)
        except Exception as exc:  # a stored message of the past that no longer decodes: not a bound
            log.warning("ingest: ignoring the last message on %s when resuming: %s", subject, exc)
            continue
        found[(event.venue, event.symbol)] = event
    return found
