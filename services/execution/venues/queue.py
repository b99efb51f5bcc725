"""The `book` fill model's arithmetic on best bid/ask (Quote) and trades, for one order. Pure.

A resting limit order has a queue ahead of it at its price, as hftbacktest's risk-averse queue
model keeps it:
- placed at the same-side best price: the size displayed there; inside the spread: none (a new
  level); behind the best: `queue_share` x the best's displayed size (the depth there is not
  seen: an assumption, configurable);
- while its level is the same-side best, never more than the size displayed there (what is
  ahead cannot exceed what is shown);
- trades at its price by the opposite aggressor (sells hitting a bid, buys lifting an ask)
  shrink it, and once it is gone the order fills with what such trades trade beyond it;
- a trade through its price (a sell below a buy limit) fills it for at most that trade's size;
- a quote whose opposite best reaches its price (an ask at or under a buy limit) clears the queue
  (whatever was ahead has traded or left) and fills it at its limit for at most the size shown at
  that best: on the venue that ask would have met our bid. A later quote at the same best offers
  only what it shows beyond what the order had there already, as for an order that takes.

An order that takes (market, or a limit that crosses the opposite best on arrival) takes the
size displayed at the opposite best, and a later quote at the same price offers only what it
shows beyond what the order took there already: the displayed size does not know about us. A
resting order crossed by a quote keeps the same account of what it had at that best."""

from __future__ import annotations

from decimal import Decimal

import msgspec

from proto.events import Quote, Side, Trade

ZERO = Decimal(0)


class Place(msgspec.Struct):
    """An order's standing in the book model once it has met the book."""

    queue: Decimal = ZERO  # the size ahead of it at its limit (resting orders)
    taking: bool = False  # takes liquidity at the opposite best (market, or a limit that crossed on arrival)
    taken_at: Decimal | None = None  # the opposite best it last filled against, and how much it had there
    taken: Decimal = ZERO


def opposite_best(quote: Quote, side: Side) -> tuple[Decimal, Decimal]:
    """The price and size a `side` order takes from: the ask for a buy, the bid for a sell."""
    return (quote.ask, quote.ask_qty) if side == "buy" else (quote.bid, quote.bid_qty)


def crosses(limit: Decimal, side: Side, quote: Quote) -> bool:
    """Whether the opposite best reaches `limit`: a buy limit at or above the ask, a sell at or below the bid."""
    return limit >= quote.ask if side == "buy" else limit <= quote.bid


def queue_on_arrival(limit: Decimal, side: Side, quote: Quote, queue_share: Decimal) -> Decimal:
    """The size ahead of a resting limit order that meets `quote`'s book."""
    best, shown = (quote.bid, quote.bid_qty) if side == "buy" else (quote.ask, quote.ask_qty)
    if limit == best:
        return shown
    inside = limit > best if side == "buy" else limit < best
    return ZERO if inside else queue_share * shown


def queue_on_quote(place: Place, limit: Decimal, side: Side, quote: Quote) -> None:
    """A new best bid/ask that does not reach the order's price (see ShadowVenue._crossed for one
    that does): the queue is capped by the displayed size while its price is the same-side best."""
    if place.queue:
        best, shown = (quote.bid, quote.bid_qty) if side == "buy" else (quote.ask, quote.ask_qty)
        if best == limit and shown < place.queue:
            place.queue = shown


def traded_for(place: Place, limit: Decimal, side: Side, trade: Trade) -> Decimal:
    """What `trade` fills of a resting order (before its remaining quantity and the step): the
    trade's size when it goes through the limit, the part beyond the queue when it prints at the
    limit with the opposite aggressor, else nothing; the queue shrinks by what traded at the price."""
    price = trade.price
    through = price < limit if side == "buy" else price > limit
    if through:
        place.queue = ZERO
        return trade.qty
    if price != limit or trade.aggressor == side:
        return ZERO
    ahead = place.queue
    place.queue = ahead - trade.qty if ahead > trade.qty else ZERO
    return trade.qty - ahead if trade.qty > ahead else ZERO


def available_to_take(place: Place, price: Decimal, shown: Decimal) -> Decimal:
    """What the opposite best offers an order that takes: its displayed size, less what the
    order took at that very price already."""
    return max(shown - place.taken, ZERO) if place.taken_at == price else shown


def took(place: Place, price: Decimal, qty: Decimal) -> None:
    if place.taken_at == price:
        place.taken += qty
    else:
        place.taken_at, place.taken = price, qty
