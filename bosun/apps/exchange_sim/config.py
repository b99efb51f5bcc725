"""The simulator's configuration, and where its credentials come from."""

from __future__ import annotations

from decimal import Decimal

from bosun.runtime.config import ConfigStruct

KEY_ENV, SECRET_ENV = "BOSUN_SIM_API_KEY", "BOSUN_SIM_API_SECRET"


class SimConfig(ConfigStruct):
    data: tuple[str, ...]
    balances: dict[str, Decimal]
    fee_bps: Decimal = Decimal(10)
    speed: float = 0.0  # replay speed as a multiple of real time; 0: only POST /sim/advance moves the market
