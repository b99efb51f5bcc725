"""A spot exchange on this machine, for rehearsing live mode with no money.

It speaks the part of Binance's REST API v3 and user-data stream that a live venue uses, and the
part of Bybit's v5 API (REST and private websocket) that ccxt's bybit uses, two dialects on one
port over one matching engine, one account's balances and one set of faults (bybit.py). It
checks each dialect's HMAC signatures, holds balances, and matches orders against real trades
replayed from market-data files. Faults are switched per test through `/sim/faults`. It never
imports ccxt: ccxt is its client, pointed at it unchanged."""
