-- The ledger: funding paid on perpetual positions, equity snapshots, and snapshots of the
-- portfolio's state that a restart starts from (services.portfolio.store).

-- A position's funding paid so far (< 0: received); realized_pnl is now net of fees and funding.
ALTER TABLE positions ADD COLUMN funding numeric NOT NULL DEFAULT 0;

-- Every funding payment, once per position and funding time; `seq` is the order handled in.
CREATE TABLE funding_payments (
    seq          bigint  GENERATED ALWAYS AS IDENTITY UNIQUE,
    client       text    NOT NULL,
    venue        text    NOT NULL,
    symbol       text    NOT NULL,
    funding_ts   bigint  NOT NULL,  -- the funding time, ns
    qty          numeric NOT NULL,  -- the signed position it was charged on
    mark_price   numeric NOT NULL,
    rate         numeric NOT NULL,
    amount       numeric NOT NULL,  -- paid (> 0) or received (< 0), quote currency
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (client, venue, symbol, funding_ts)
);

-- Each client's equity at each snapshot time (proto.events.EquitySnapshot).
CREATE TABLE equity_snapshots (
    client          text    NOT NULL,
    ts_event        bigint  NOT NULL,
    capital         numeric NOT NULL,
    realized_pnl    numeric NOT NULL,  -- net of fees and funding
    unrealized_pnl  numeric NOT NULL,
    fees            numeric NOT NULL,
    funding         numeric NOT NULL,
    equity          numeric NOT NULL,
    gross_exposure  numeric NOT NULL,
    net_exposure    numeric NOT NULL,
    unmarked        text[]  NOT NULL,  -- markets marked at a stale or missing price
    PRIMARY KEY (client, ts_event)
);

-- The portfolio's whole state (services.portfolio.snapshot.LedgerState, msgpack) after every
-- fill up to fills.seq = through_fill_seq and every payment up to funding_payments.seq =
-- through_funding_seq. Only the newest few are kept.
CREATE TABLE ledger_snapshots (
    seq                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ts_event             bigint NOT NULL,
    through_fill_seq     bigint NOT NULL,
    through_funding_seq  bigint NOT NULL,
    state                bytea  NOT NULL
);
