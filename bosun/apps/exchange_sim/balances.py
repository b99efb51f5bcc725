"""The account's balances: free and locked per asset, exact decimals. An order locks what it may
spend; a fill spends from the lock and credits the proceeds."""

from __future__ import annotations

from decimal import Decimal

from bosun.apps.exchange_sim.errors import INSUFFICIENT_BALANCE, error

ZERO = Decimal(0)


class Balances:
    def __init__(self, initial: dict[str, Decimal]) -> None:
        for asset, amount in initial.items():
            if amount < 0:
                raise ValueError(f"balance of {asset} is {amount}: a starting balance cannot be negative")
        self.free = dict(initial)
        self.locked = {asset: ZERO for asset in initial}

    def assets(self) -> list[str]:
        return sorted(set(self.free) | set(self.locked))

    def lock(self, asset: str, amount: Decimal) -> None:
        if self.free.get(asset, ZERO) < amount:
            raise error(INSUFFICIENT_BALANCE)
        self.free[asset] -= amount
        self.locked[asset] = self.locked.get(asset, ZERO) + amount

    def unlock(self, asset: str, amount: Decimal) -> None:
        self.locked[asset] -= amount
        self.free[asset] += amount

    def spend_locked(self, asset: str, amount: Decimal) -> None:
        self.locked[asset] -= amount

    def credit(self, asset: str, amount: Decimal) -> None:
        self.free[asset] = self.free.get(asset, ZERO) + amount
        self.locked.setdefault(asset, ZERO)
