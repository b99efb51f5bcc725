"""The exchange: balances, orders and fills against the replayed trades, and the user-stream
events each change makes. Pure: no sockets; the REST and stream layers call in.

How orders fill (the replay has trades, not a book, so depth is unknown):
- a MARKET order, or a LIMIT order that crosses the last traded price, fills at once in full at
  the last price (taker); a LIMIT_MAKER (post-only) that would is refused;
- a resting LIMIT order fills (maker, at its limit price) from each replayed trade that prints at
  or through its price, up to that trade's quantity, best price and then oldest first, so big
  orders fill partially over several trades;
- STOP_LOSS / TAKE_PROFIT (and their _LIMIT forms) wait until a trade reaches the stop price, then
  act as MARKET (at that trade's price) or LIMIT;
- an OCO order list pairs a STOP_LOSS* and a TAKE_PROFIT* leg over one lock: the leg whose stop
  trades first expires the other before it acts, and a cancel of either leg cancels both.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Callable
from decimal import ROUND_DOWN, Decimal

from bosun.apps.exchange_sim import wire
from bosun.apps.exchange_sim.balances import Balances
from bosun.apps.exchange_sim.book import ZERO, Fill, Order, OrderList, marketable, priority, stop_reached
from bosun.apps.exchange_sim.errors import (
    DUPLICATE_ORDER,
    INSUFFICIENT_BALANCE,
    INVALID_SYMBOL,
    NO_SUCH_ORDER,
    UNKNOWN_ORDER,
    WOULD_TAKE,
    BinanceError,
    error,
    filter_failure,
)
from bosun.apps.exchange_sim.market import Replay, SymbolRules, Tick

MAX_OPEN_ORDERS = 200  # per symbol, Binance's MAX_NUM_ORDERS
MAX_CLOSED_ORDERS = 10_000  # closed orders kept for GET /api/v3/order, oldest dropped first
MAX_TRADES = 100_000  # fills kept for GET /api/v3/myTrades
FEE_PLACES = Decimal("0.00000001")

Publish = Callable[[list[dict[str, object]]], None]


def new_client_id() -> str:
    """What Binance makes up when a request names no client id."""
    return f"sim_{uuid.uuid4().hex[:22]}"


class Exchange:
    def __init__(self, replay: Replay, balances: Balances, fee_rate: Decimal, clock: Callable[[], int]) -> None:
        self.replay, self.balances, self.fee_rate, self.clock = replay, balances, fee_rate, clock
        self.rules: dict[str, SymbolRules] = replay.rules
        self.last_price: dict[str, Decimal] = {}
        self.market_ms = 0  # time of the last replayed trade
        self.orders: dict[int, Order] = {}
        self._open: dict[str, dict[int, Order]] = {symbol: {} for symbol in self.rules}  # by symbol, by id
        self._closed: deque[int] = deque()
        self.trades: deque[Fill] = deque(maxlen=MAX_TRADES)
        self._next_order_id = self._next_trade_id = self._next_list_id = 1
        self.lists: dict[int, OrderList] = {}  # OCO order lists, oldest first; closed ones beyond a bound dropped
        self._events: list[dict[str, object]] = []
        self._changed_assets: set[str] = set()
        self.subscribers: list[Publish] = []
        self.tick_subscribers: list[Callable[[Tick], None]] = []  # every replayed trade (the market streams)
        # Orders need a price: the market opens with the first trade of each symbol replayed.
        while self.replay.peek() is not None and len(self.last_price) < len(self.rules):
            self._replay_one()
        self._flush()

    # ------------------------------------------------------------------ orders

    def place(self, *, symbol: str, side: str, type: str, time_in_force: str, qty: Decimal, price: Decimal,
              stop_price: Decimal, quote_qty: Decimal, client_id: str | None) -> Order:
        rules = self.rules_of(symbol)
        self._refuse_open_client_ids(symbol, client_id)
        last = self.last_price[symbol]
        order = self._checked(rules, last, side=side, type=type, time_in_force=time_in_force, qty=qty, price=price,
                              stop_price=stop_price, quote_qty=quote_qty, client_id=client_id)
        if type == "LIMIT_MAKER" and marketable(order, last):
            raise error(WOULD_TAKE)
        self._room_for(symbol, 1)
        if quote_qty:  # a market order for an amount of the quote asset: that much at the last price
            order.qty = (quote_qty / last).quantize(rules.step_size, ROUND_DOWN)
        order.locked = self._to_lock(order, last)
        self.balances.lock(order.lock_asset, order.locked)
        self._open_order(order)
        if not order.waiting:
            self._start(order, last)
        self._flush()
        return order

    def place_oco(self, *, symbol: str, side: str, qty: Decimal, list_client_id: str | None,
                  above: dict[str, object], below: dict[str, object]) -> OrderList:
        """POST /api/v3/orderList/oco with stop-loss / take-profit legs (`above`, `below`: type, price,
        stop_price, time_in_force, client_id each): a sell's take-profit above the last price and its
        stop-loss below it, a buy's the other way round."""
        rules = self.rules_of(symbol)
        list_client_id = list_client_id or new_client_id()
        if any(lst.is_open and lst.client_id == list_client_id for lst in self.lists.values()):
            raise error(DUPLICATE_ORDER)
        self._refuse_open_client_ids(symbol, above["client_id"], below["client_id"])  # type: ignore[arg-type]
        last = self.last_price[symbol]
        legs = tuple(self._checked(rules, last, side=side, qty=qty, quote_qty=ZERO, **leg)  # type: ignore[arg-type]
                     for leg in (above, below))
        kinds = tuple(leg.type.split("_")[0] for leg in legs)  # STOP or TAKE
        if sorted(kinds) != ["STOP", "TAKE"] or kinds[0] != ("TAKE" if side == "SELL" else "STOP"):
            raise BinanceError(400, -1106, "An OCO on the {} side needs {} above and {} below.".format(
                side, *(("TAKE_PROFIT", "STOP_LOSS") if side == "SELL" else ("STOP_LOSS", "TAKE_PROFIT"))))
        if not legs[0].stop_price > last > legs[1].stop_price:
            raise BinanceError(400, -2010, "The relationship of the prices for the orders is not correct.")
        self._room_for(symbol, 2)
        holder = legs[1]  # one lock for the pair: both may sell (or buy with) the same funds
        holder.locked = max(self._to_lock(leg, last) for leg in legs)
        self.balances.lock(holder.lock_asset, holder.locked)
        order_list = OrderList(self._next_list_id, list_client_id, symbol, legs, self.clock())  # type: ignore[arg-type]
        self._next_list_id += 1
        self.lists[order_list.id] = order_list
        while len(self.lists) > MAX_CLOSED_ORDERS and not (oldest := next(iter(self.lists.values()))).is_open:
            del self.lists[oldest.id]
        for leg in legs:
            leg.list_id = order_list.id
            self._open_order(leg)
        self._flush()
        return order_list

    def _checked(self, rules: SymbolRules, last: Decimal, *, side: str, type: str, time_in_force: str, qty: Decimal,
                 price: Decimal, stop_price: Decimal, quote_qty: Decimal, client_id: str | None) -> Order:
        order = Order(id=0, client_id=client_id or new_client_id(), symbol=rules.symbol, side=side,
                      type=type, time_in_force=time_in_force, qty=qty, price=price, stop_price=stop_price,
                      quote_qty=quote_qty, time_ms=self.clock(), update_ms=self.clock(),
                      lock_asset=rules.quote if side == "BUY" else rules.base)
        self._check_filters(order, rules, last)
        return order

    def _refuse_open_client_ids(self, symbol: str, *client_ids: str | None) -> None:
        open_ids = {o.client_id for o in self._open[symbol].values()}
        if any(cid and cid in open_ids for cid in client_ids):
            raise error(DUPLICATE_ORDER)  # Binance refuses a client id only while its order is open

    def _room_for(self, symbol: str, n: int) -> None:
        if len(self._open[symbol]) + n > MAX_OPEN_ORDERS:
            raise BinanceError(400, -2010, "Account has too many open orders.")

    def _open_order(self, order: Order) -> None:
        order.id, self._next_order_id = self._next_order_id, self._next_order_id + 1
        self.orders[order.id] = self._open[order.symbol][order.id] = order
        self._changed_assets.add(order.lock_asset)
        self._report(order, "NEW")

    def cancel(self, symbol: str, order_id: int | None, client_id: str | None, cancel_id: str | None = None) -> Order:
        order = self._find(symbol, order_id, client_id, UNKNOWN_ORDER)
        if not order.is_open:
            raise error(UNKNOWN_ORDER)
        order.cancel_client_id = cancel_id or new_client_id()
        self._close(order, "CANCELED")
        for leg in self._siblings(order):  # canceling a leg of an OCO cancels the list
            leg.cancel_client_id = new_client_id()
            self._close(leg, "CANCELED")
        self._flush()
        return order

    def get_list(self, list_id: int | None, client_id: str | None) -> OrderList:
        """GET /api/v3/orderList: by its id, else the newest with that client id."""
        found = self.lists.get(list_id) if list_id is not None else next(
            (lst for lst in reversed(self.lists.values()) if lst.client_id == client_id), None)
        if found is None or client_id not in (None, found.client_id):
            raise BinanceError(400, -2013, "Order list does not exist.")
        return found

    def cancel_list(self, symbol: str, list_id: int | None, client_id: str | None) -> OrderList:
        order_list = self.get_list(list_id, client_id)
        if order_list.symbol != symbol or not order_list.is_open:
            raise BinanceError(400, -2011, "Unknown order list sent.")
        for leg in order_list.legs:
            if leg.is_open:
                leg.cancel_client_id = new_client_id()
                self._close(leg, "CANCELED")
        self._flush()
        return order_list

    def _siblings(self, order: Order) -> list[Order]:
        order_list = self.lists.get(order.list_id)
        return [] if order_list is None else [leg for leg in order_list.legs if leg is not order and leg.is_open]

    def cancel_all(self, symbol: str) -> list[Order]:
        orders = list(self._open[self.rules_of(symbol).symbol].values())
        if not orders:
            raise error(UNKNOWN_ORDER)
        for order in orders:
            order.cancel_client_id = new_client_id()
            self._close(order, "CANCELED")
        self._flush()
        return orders

    def get(self, symbol: str, order_id: int | None, client_id: str | None) -> Order:
        return self._find(symbol, order_id, client_id, NO_SUCH_ORDER)

    def open_orders(self, symbol: str | None) -> list[Order]:
        symbols = self.rules if symbol is None else (self.rules_of(symbol).symbol,)
        return [o for s in symbols for o in self._open[s].values()]

    def my_trades(self, symbol: str, *, order_id: int | None, from_id: int | None, start_ms: int | None,
                  end_ms: int | None, limit: int) -> list[Fill]:
        self.rules_of(symbol)
        found = [f for f in self.trades if f.symbol == symbol and order_id in (None, f.order_id)
                 and (from_id is None or f.trade_id >= from_id) and (start_ms is None or f.time_ms >= start_ms)
                 and (end_ms is None or f.time_ms <= end_ms)]
        return found[:limit] if from_id is not None or start_ms is not None else found[-limit:]

    def rules_of(self, symbol: str) -> SymbolRules:
        rules = self.rules.get(symbol)
        if rules is None:
            raise error(INVALID_SYMBOL)
        return rules

    # ------------------------------------------------------------------ time

    def advance(self, *, trades: int = 0, until_ms: int | None = None) -> int:
        """Replay `trades` more trades, or every trade up to the market time `until_ms`; how many."""
        count = 0
        while (tick := self.replay.peek()) is not None and (
                count < trades if until_ms is None else tick.time_ms <= until_ms):
            self._replay_one()
            count += 1
        if until_ms is not None:
            self.market_ms = max(self.market_ms, until_ms)
        self._flush()
        return count

    def _replay_one(self) -> None:
        tick = self.replay.pop()
        assert tick is not None
        self.market_ms = tick.time_ms
        self.last_price[tick.symbol] = tick.price
        for subscriber in self.tick_subscribers:
            subscriber(tick)
        for order in list(self._open[tick.symbol].values()):  # oldest first
            if order.is_open and order.waiting and stop_reached(order, tick.price):
                order.triggered = True
                for leg in self._siblings(order):  # one-cancels-the-other: never both
                    order.locked, leg.locked = order.locked + leg.locked, ZERO
                    self._close(leg, "EXPIRED")
                self._start(order, tick.price)
        self._match_resting(tick)

    def _match_resting(self, tick: Tick) -> None:
        left = tick.qty
        resting = sorted((o for o in self._open[tick.symbol].values() if not o.waiting and o.acts_as == "LIMIT"
                          and marketable(o, tick.price)), key=priority)
        step = self.rules[tick.symbol].step_size
        for order in resting:
            qty = min(order.remaining, left).quantize(step, ROUND_DOWN)
            if qty <= 0:
                break
            left -= qty
            self._fill(order, qty, order.price, maker=True)

    def _start(self, order: Order, last: Decimal) -> None:
        """An order that is live (placed, or its stop traded): it takes what it can at `last`."""
        if order.acts_as == "MARKET":
            if order.side == "BUY" and order.qty * last > order.locked + self.balances.free[order.lock_asset]:
                self._close(order, "EXPIRED")  # a triggered stop buy the account can no longer pay for
            else:
                self._fill(order, order.remaining, last, maker=False)
        elif marketable(order, last):
            self._fill(order, order.remaining, last, maker=False)
        elif order.time_in_force in ("IOC", "FOK"):
            self._close(order, "EXPIRED")

    # ------------------------------------------------------------------ money

    def _check_filters(self, order: Order, rules: SymbolRules, last: Decimal) -> None:
        for price in (order.price, order.stop_price):
            if price and (price % rules.tick_size or not rules.min_price <= price <= rules.max_price):
                raise filter_failure("PRICE_FILTER")
        if order.qty and (order.qty % rules.step_size or not rules.min_qty <= order.qty <= rules.max_qty):
            raise filter_failure("LOT_SIZE")
        notional = order.quote_qty or order.qty * (order.price or order.stop_price or last)
        if notional < rules.min_notional:
            raise filter_failure("NOTIONAL")

    def _to_lock(self, order: Order, last: Decimal) -> Decimal:
        if order.side == "SELL":
            return order.qty
        if order.acts_as == "MARKET":
            return order.quote_qty or order.qty * (order.stop_price or last)
        return order.qty * order.price

    def _fill(self, order: Order, qty: Decimal, price: Decimal, *, maker: bool) -> None:
        rules = self.rules[order.symbol]
        cost = qty * price
        got_asset, got = (rules.base, qty) if order.side == "BUY" else (rules.quote, cost)
        spent = cost if order.side == "BUY" else qty
        from_lock = min(spent, order.locked)
        if spent > from_lock and self.balances.free[order.lock_asset] < spent - from_lock:
            raise error(INSUFFICIENT_BALANCE)
        self.balances.spend_locked(order.lock_asset, from_lock)
        self.balances.free[order.lock_asset] -= spent - from_lock
        order.locked -= from_lock
        commission = (got * self.fee_rate).quantize(FEE_PLACES)
        self.balances.credit(got_asset, got - commission)
        fill = Fill(trade_id=self._next_trade_id, order_id=order.id, symbol=order.symbol, side=order.side,
                    price=price, qty=qty, commission=commission, commission_asset=got_asset, time_ms=self.clock(),
                    maker=maker)
        self._next_trade_id += 1
        self.trades.append(fill)
        order.fills.append(fill)
        order.filled += qty
        order.quote_filled += cost
        order.update_ms = fill.time_ms
        order.status = "FILLED" if order.remaining <= 0 else "PARTIALLY_FILLED"
        self._changed_assets.update((order.lock_asset, got_asset))
        if order.status == "FILLED":
            self._release(order)
        elif order.side == "BUY" and order.acts_as == "LIMIT":
            # The lock covers the rest at the limit price; a fill below it frees the difference.
            self._unlock(order, order.locked - order.remaining * order.price)
        self._report(order, "TRADE", fill)
        if order.status == "FILLED":
            self._retire(order)

    def _close(self, order: Order, status: str) -> None:
        order.status, order.update_ms = status, self.clock()
        self._release(order)
        self._report(order, status)
        self._retire(order)

    def _release(self, order: Order) -> None:
        self._unlock(order, order.locked)

    def _unlock(self, order: Order, amount: Decimal) -> None:
        if amount > 0:
            self.balances.unlock(order.lock_asset, amount)
            order.locked -= amount
            self._changed_assets.add(order.lock_asset)

    def _retire(self, order: Order) -> None:
        del self._open[order.symbol][order.id]
        self._closed.append(order.id)
        while len(self._closed) > MAX_CLOSED_ORDERS:
            self.orders.pop(self._closed.popleft(), None)

    def _find(self, symbol: str, order_id: int | None, client_id: str | None,
              missing: tuple[int, int, str]) -> Order:
        self.rules_of(symbol)
        if order_id is not None:
            order = self.orders.get(order_id)
            if order is not None and order.symbol == symbol and client_id in (None, order.client_id):
                return order
        elif client_id is not None:
            for order in reversed(self.orders.values()):  # the newest order with that client id
                if order.symbol == symbol and order.client_id == client_id:
                    return order
        raise error(missing)

    # ------------------------------------------------------------------ events

    def _report(self, order: Order, exec_type: str, fill: Fill | None = None) -> None:
        self._events.append(wire.execution_report(order, exec_type, fill, self.clock()))

    def _flush(self) -> None:
        """Hand the events of one step to the subscribers: execution reports, then the balances."""
        if self._changed_assets:
            self._events.append(wire.account_position(self.balances, self._changed_assets, self.clock()))
        events, self._events, self._changed_assets = self._events, [], set()
        if events:
            for publish in self.subscribers:
                publish(events)

