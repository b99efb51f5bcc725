-- The portfolio's store. Applied once by services.portfolio.store.PortfolioStore.migrate;
-- never edit an applied migration: add the next numbered file instead.

-- Every fill, once. Fill ids are unique per venue, hence the key (venue, fill_id).
-- `seq` is the order the portfolio handled them in: replaying in that order rebuilds
-- exactly the same positions (average-cost accounting depends on the order).
CREATE TABLE fills (
    seq             bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    fill_id         text        NOT NULL,
    client_order_id text        NOT NULL,
    client          text        NOT NULL,
    venue           text        NOT NULL,
    symbol          text        NOT NULL,
    side            text        NOT NULL CHECK (side IN ('buy', 'sell')),
    qty             numeric     NOT NULL CHECK (qty > 0),
    price           numeric     NOT NULL CHECK (price > 0),
    fee             numeric     NOT NULL,
    liquidity       text        NOT NULL CHECK (liquidity IN ('maker', 'taker')),
    reason          text        NOT NULL,
    ts_event        bigint      NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (venue, fill_id)
);

-- The newest position per client, venue and symbol, as last published (PositionChanged).
CREATE TABLE positions (
    client       text    NOT NULL,
    venue        text    NOT NULL,
    symbol       text    NOT NULL,
    qty          numeric NOT NULL,  -- signed: + long, - short
    avg_price    numeric NOT NULL,
    realized_pnl numeric NOT NULL,  -- net of fees, as in PositionChanged
    fees         numeric NOT NULL,
    fill_id      text    NOT NULL,  -- the last fill applied
    updated_ts   bigint  NOT NULL,  -- that fill's ts_event
    PRIMARY KEY (client, venue, symbol)
);

-- Closed round trips (services.portfolio.roundtrips.RoundTrip); one fill opens at most one.
CREATE TABLE round_trips (
    venue          text             NOT NULL,
    entry_fill_id  text             NOT NULL,
    exit_fill_id   text             NOT NULL,
    client         text             NOT NULL,
    symbol         text             NOT NULL,
    side           text             NOT NULL CHECK (side IN ('long', 'short')),
    qty            numeric          NOT NULL,
    entry_price    numeric          NOT NULL,
    exit_price     numeric          NOT NULL,
    fees           numeric          NOT NULL,
    pnl            numeric          NOT NULL,  -- net of fees
    return_pct     numeric          NOT NULL,
    entry_time_ns  bigint           NOT NULL,
    exit_time_ns   bigint           NOT NULL,
    duration_s     double precision NOT NULL,
    exit_reason    text             NOT NULL,
    PRIMARY KEY (venue, entry_fill_id)
);

CREATE INDEX round_trips_client_exit ON round_trips (client, exit_time_ns);
