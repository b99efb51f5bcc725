"""One position (client, venue, symbol) under average-cost accounting, in exact Decimals.

The position keeps its cost basis (the entry notional of the open quantity) rather than
an average price. Sums and products are exact (50 significant digits). The one rounding
is a partial close's share of the cost basis, rounded to QUANTUM; the last close takes
what is left, so once flat the realized pnl is exactly the cash flow of the fills."""

from __future__ import annotations

from decimal import Context, Decimal

from proto.events import Side

ZERO = Decimal(0)
# Sums and products of prices, quantities and money stay exact at this precision. Called
# through its methods (add, multiply, ...) rather than `with localcontext(ARITHMETIC)`:
# the same results, without the cost of entering a context on every fill and mark.
ARITHMETIC = Context(prec=50)
add, subtract, multiply = ARITHMETIC.add, ARITHMETIC.subtract, ARITHMETIC.multiply
# A pro-rata share (of a cost basis, of a fee) is rounded to this: finer than any
# venue's price x quantity, and coarse enough that sums of shares stay exact.
QUANTUM = Decimal("1e-18")
# Averages and ratios are reported at decimal128 precision.
REPORTED = Context(prec=34)
divide = REPORTED.divide  # for averages and ratios that are reported, never accumulated


def share(amount: Decimal, part: Decimal, whole: Decimal) -> Decimal:
    """`amount * part / whole` (in ARITHMETIC), rounded to QUANTUM; exactly `amount` when
    part == whole. The caller keeps `amount - share` as the rest, so the two shares always
    add up to `amount`."""
    if part == whole:
        return amount
    return ARITHMETIC.quantize(ARITHMETIC.divide(multiply(amount, part), whole), QUANTUM)


def side_sign(side: Side) -> int:
    if side == "buy":
        return 1
    if side == "sell":
        return -1
    raise ValueError(f"fill side must be 'buy' or 'sell', got {side!r}")


def check_fill(side: Side, qty: Decimal, price: Decimal, fee: Decimal) -> int:
    """The sign of the fill (+1 buy, -1 sell), or a ValueError naming the bad parameter."""
    sign = side_sign(side)
    if not (qty.is_finite() and qty > ZERO):
        raise ValueError(f"fill qty must be a positive number, got {qty}")
    if not (price.is_finite() and price > ZERO):
        raise ValueError(f"fill price must be a positive number, got {price}")
    if not fee.is_finite():
        raise ValueError(f"fill fee must be a finite number, got {fee}")
    return sign


class Position:
    """Signed `qty` (+ long, - short), average entry price of the open qty, gross
    `realized_pnl`, the `fees` paid and the perpetual `funding` paid (< 0: received), all in
    quote currency. Mutable; no I/O."""

    __slots__ = ("qty", "cost", "realized_pnl", "fees", "funding")

    def __init__(self, qty: Decimal = ZERO, avg_price: Decimal = ZERO,
                 realized_pnl: Decimal = ZERO, fees: Decimal = ZERO, funding: Decimal = ZERO) -> None:
        self.qty = qty
        self.cost = ARITHMETIC.multiply(abs(qty), avg_price)  # entry notional of the open qty, >= 0
        self.realized_pnl = realized_pnl
        self.fees = fees
        self.funding = funding

    @property
    def net_realized(self) -> Decimal:
        """Realized pnl after fees and funding (funding left out while there is none, so that a
        spot position's figure keeps the digits it always had)."""
        net = self.realized_pnl - self.fees
        return net - self.funding if self.funding else net

    def pay_funding(self, qty: Decimal, mark: Decimal, rate: Decimal) -> Decimal:
        """Book one funding time on `qty` (what was held then): qty x mark x rate is paid (a long
        pays a positive rate, a short receives it); returns that amount."""
        amount = multiply(multiply(qty, mark), rate)
        self.funding = add(self.funding, amount)
        return amount

    @property
    def avg_price(self) -> Decimal:
        """Average entry price of the open qty; 0 when flat."""
        if not self.qty:
            return ZERO
        return divide(self.cost, self.qty.copy_abs())

    def apply_fill(self, side: Side, qty: Decimal, price: Decimal, fee: Decimal) -> Decimal:
        """Apply one fill; returns the gross pnl it realized. A fill that crosses zero
        closes the old side at its average price and opens the rest at the fill price."""
        return self.apply_checked(check_fill(side, qty, price, fee), qty, price, fee)

    def apply_checked(self, sign: int, qty: Decimal, price: Decimal, fee: Decimal) -> Decimal:
        """`apply_fill` for a fill that check_fill accepted, `sign` being what it returned."""
        # Exact results make sign flips free of context calls: copy_abs / copy_negate and
        # add / subtract instead of multiplying by +-1, the same digits and exponent.
        self.fees = add(self.fees, fee)
        held = self.qty
        if not held or (held > ZERO) == (sign > 0):  # opening or adding
            self.qty = add(held, qty) if sign > 0 else subtract(held, qty)
            self.cost = add(self.cost, multiply(qty, price))
            return ZERO
        held = held.copy_abs()
        closed = held if held < qty else qty
        closed_cost = share(self.cost, closed, held)
        # Closing a long sells (gain when price > entry); closing a short buys.
        realized = subtract(multiply(closed, price), closed_cost)
        if sign > 0:
            realized = realized.copy_negate()
        self.realized_pnl = add(self.realized_pnl, realized)
        self.qty = add(self.qty, qty) if sign > 0 else subtract(self.qty, qty)
        if qty > closed:  # flipped: the rest opens the other side at the fill price
            self.cost = multiply(subtract(qty, closed), price)
        else:
            self.cost = subtract(self.cost, closed_cost)
        return realized

    def unrealized(self, mark: Decimal) -> Decimal:
        """Gross pnl of the open qty if it were closed at `mark`."""
        qty = self.qty
        if not qty:
            return ZERO
        # |qty| x mark - cost for a long, cost - |qty| x mark for a short: one signed product.
        value = multiply(qty, mark)
        return subtract(value, self.cost) if qty > ZERO else add(value, self.cost)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Position):
            return NotImplemented
        return (self.qty, self.avg_price, self.realized_pnl, self.fees, self.funding) == (
            other.qty, other.avg_price, other.realized_pnl, other.fees, other.funding)

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return (f"Position(qty={self.qty}, avg_price={self.avg_price}, "
                f"realized_pnl={self.realized_pnl}, fees={self.fees}, funding={self.funding})")
