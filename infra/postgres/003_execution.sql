-- The execution service's store: its intents, in a schema of its own. Written by
-- services.execution.store.ExecutionStore (the edge carrying out the actor's Record* effects)
-- before the message that caused them is acked. Never edit an applied migration: add the next file.
CREATE SCHEMA execution;

-- Approved targets execution acted on.
CREATE TABLE execution.intents (
    target_id   text        PRIMARY KEY,
    client      text        NOT NULL,
    venue       text        NOT NULL,
    symbol      text        NOT NULL,
    qty         numeric     NOT NULL,
    stop_loss   numeric,
    take_profit numeric,
    reason      text        NOT NULL,
    ts_event    bigint      NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);

-- The orders derived from them and what became of each; `command` is the SubmitOrder as on the
-- wire (msgpack), so an open order is restored exactly.
CREATE TABLE execution.orders (
    client_order_id text    PRIMARY KEY,
    target_id       text    NOT NULL,
    client          text    NOT NULL,
    venue           text    NOT NULL,
    symbol          text    NOT NULL,
    order_type      text    NOT NULL,
    command         bytea   NOT NULL,
    state           text    NOT NULL CHECK (state IN ('open', 'filled', 'canceled', 'rejected')),
    remaining       numeric NOT NULL,
    venue_order_id  text,
    ts_event        bigint  NOT NULL
);
CREATE INDEX orders_open ON execution.orders (client, venue, symbol) WHERE state = 'open';

-- Each position as execution books it, with its protective levels (from the target that set
-- them) and the newest fill recorded: a restart reads the venue's trades from there on.
CREATE TABLE execution.positions (
    client       text    NOT NULL,
    venue        text    NOT NULL,
    symbol       text    NOT NULL,
    qty          numeric NOT NULL DEFAULT 0,
    target_id    text,
    stop_loss    numeric,
    take_profit  numeric,
    last_fill_id text,
    last_fill_ns bigint,
    PRIMARY KEY (client, venue, symbol)
);
