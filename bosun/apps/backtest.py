"""The backtest: the live ingest, signal, risk, execution and portfolio actors in one
process on the in-process bus, driven bar by bar by a simulated clock.

For each bar (all symbols merged in time order) the clock moves to the bar's close, the
ingest actor publishes the bar and its price snapshot and the bus is drained; then the equity is
marked. After the last bar every open position gets a target of 0 with reason
`end_of_data`, which the shadow venue fills at the last close. Bars are not kept: memory holds
only the results (fills, round trips, one equity point per bar time).

With a venue on the `book` fill model and trade (and bookTicker) files, the trades and quotes
themselves reach the shadow venues too, between the bars built from them (`open_ticks`), as in
paper mode: the venue fills on them, and the strategies still see bars."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing
from decimal import Decimal
from functools import partial
from itertools import chain
from pathlib import Path
from typing import Any

import msgspec

from bosun.apps.outputs import IsoTime
from bosun.runtime.clock import SimClock
from bosun.apps.config import ClientConfig, Config
from bosun.runtime.inproc import InProcessBus
from proto import subjects as sj
from proto.events import Bar, FundingRateSettled, OrderFilled, PriceSnapshot, Quote, Trade, TargetPosition
from services.execution.actor import ExecutionActor
from services.execution.config import VenueConfig
from services.execution.venues.shadow_adapter import ShadowAdapter
from services.ingest.actor import InOrderMarketData
from services.ingest.bars import bars_from_trades
from services.ingest.files import DataError, kind_of, read_market_file
from services.ingest.quotes import QuoteBlock, read_book_ticker_blocks
from services.ingest.replay import merge_by_time, recorded
from services.portfolio import analytics
from services.portfolio import metrics as perf
from services.portfolio.execution_quality import OrderJournal
from services.portfolio.actor import PortfolioActor
from services.portfolio.roundtrips import RoundTrip, in_exit_order
from services.risk.actor import RiskActor
from services.risk.config import LimitsConfig
from services.signal.actor import SignalActor
from services.signal.config import SizingConfig, StrategyConfig

CLIENT = "backtest"
STRATEGY = "cli"
END_OF_DATA = "end_of_data"
# The in-process bus delivers every command before the next bar, so the shadow venue never
# looks back further than the bar a command was decided at; a long window only costs cache.
IN_ORDER_RECENT = 4
QuoteRun = tuple[QuoteBlock, int, int]  # a block's quotes [start, end), all before the next bar or trade


class Flags(msgspec.Struct, frozen=True):
    """The strategy, sizing and venue of a run without a config file."""

    strategy: str = "sma_cross"
    params: dict[str, int | float | str] | None = None
    long_only: bool = False
    qty: Decimal | None = None  # fixed base quantity; else equity_fraction
    equity_fraction: Decimal | None = None
    capital: Decimal = Decimal(10000)
    fee_bps: Decimal = Decimal(10)
    slippage_bps: Decimal = Decimal(0)
    fill: str = "next_open"


class Result(msgspec.Struct):
    capital: Decimal  # the clients' capital together
    start_ns: int  # the first bar's open
    bars: int
    fills: list[OrderFilled]
    trips: list[RoundTrip]
    equity: list[perf.EquityPoint]
    metrics: dict[str, Any]  # metrics.compute's, then analytics.compute's keys
    risk: dict[str, Any]  # the risk actor's status at the end: its limits, their state and trips


# ----------------------------------------------------------------------------- data


class _Source(msgspec.Struct):
    path: Path
    first: Bar
    bars: Iterator[Bar]  # the first bar included


def _open(path: Path, interval: str) -> _Source | None:
    """One file as bars (trade files are aggregated to `interval`); None when it is empty or
    holds quotes (bookTicker: no bars, see `open_ticks`) or funding rates (`open_funding`)."""
    rows: Iterator[Bar] | Iterator[Trade] = read_market_file(path)  # type: ignore[assignment]
    first = next(rows, None)
    if first is None or type(first) is Quote:
        return None
    if isinstance(first, FundingRateSettled):  # once per file, not per bar: see `open_funding`
        return None
    rows = chain([first], rows)
    bars: Iterator[Bar] = bars_from_trades(rows, interval) if isinstance(first, Trade) else rows  # type: ignore
    first_bar = next(bars)
    return _Source(path, first_bar, chain([first_bar], bars))


def _joined(sources: list[_Source]) -> Iterator[Bar]:
    """The files of one symbol back to back in time order; overlapping files are an error."""
    previous: _Source | None = None
    last: Bar | None = None
    for source in sorted(sources, key=lambda s: s.first.ts_open):
        if last is not None and previous is not None and source.first.ts_open <= last.ts_open:
            iso = IsoTime()
            raise DataError(source.path, None, f"its first bar (open {iso(source.first.ts_open)}) is not after the "
                                               f"last bar of {previous.path} (open {iso(last.ts_open)}): the files "
                                               f"overlap or repeat bars")
        bar = None
        for bar in source.bars:
            yield bar
        previous, last = source, bar


def open_data(paths: Sequence[str | Path], interval: str = "1m") -> tuple[list[tuple[str, str]], Iterator[Bar]]:
    """The (venue, symbol) pairs found in the files, and all their bars in time order."""
    by_market: dict[tuple[str, str], list[_Source]] = {}
    for path in paths:
        source = _open(Path(path), interval)
        if source is not None:
            by_market.setdefault((source.first.venue, source.first.symbol), []).append(source)
    if not by_market:
        raise DataError(", ".join(map(str, paths)) or "--data", None, "no bars in the data files")
    streams = [sources[0].bars if len(sources) == 1 else _joined(sources) for sources in by_market.values()]
    bars = streams[0] if len(streams) == 1 else merge_by_time(streams)
    return list(by_market), bars


def open_ticks(paths: Sequence[str | Path], interval: str = "1m") -> Iterator[Bar | Trade | Quote | QuoteRun]:
    """Every trade and quote of the files and the bars built from the trades (and those of kline
    files), in time order: a bar right after the last trade it sums (`recorded`, as paper mode
    replays them). From trade files and one bookTicker file (a capture) the quotes come as runs
    (QuoteRun), made into Quote events only where the venues need them (see `_feeding_ticks`)."""
    kinds = [kind_of(path) for path in paths]
    # Funding files are paid by the portfolio, never seen by a venue: `open_funding`.
    paths = [path for path, kind in zip(paths, kinds) if kind != "funding"]
    kinds = [kind for kind in kinds if kind != "funding"]
    if kinds.count("quotes") == 1 and set(kinds) == {"trades", "quotes"}:
        trades = [path for path, kind in zip(paths, kinds) if kind == "trades"]
        quotes = paths[kinds.index("quotes")]
        return _with_quote_runs(recorded(trades, interval), read_book_ticker_blocks(quotes))  # type: ignore[arg-type]
    return recorded(paths, interval)


def _with_quote_runs(market: Iterator[Bar | Trade], blocks: Iterator[QuoteBlock]) -> Iterator[Bar | Trade | QuoteRun]:
    """`market` with the quotes of `blocks` between its events, as `merge_by_time([market, quotes])`
    orders them (a quote of an event's very time after it), in runs: the quotes of a block before
    the next event."""
    block = next(blocks, None)
    times: list[int] = block.times if block is not None else []
    start = 0
    for event in market:
        ts = event.ts_event
        while block is not None:
            end = bisect_left(times, ts, start)
            if end > start:
                yield block, start, end
            if end < len(times):
                start = end
                break
            block, start = next(blocks, None), 0
            times = block.times if block is not None else []
        yield event
    while block is not None:
        if start < len(times):
            yield block, start, len(times)
        block, start = next(blocks, None), 0
        times = block.times if block is not None else []


def open_funding(paths: Sequence[str | Path], markets: Iterable[tuple[str, str]]) -> list[FundingRateSettled]:
    """The funding settlements of the funding rate files among `paths`, in time order (a few a day).
    A file for a market with no bars in the data is refused by name: no position could pay it."""
    markets = set(markets)
    streams: list[Iterator[FundingRateSettled]] = []
    for path in paths:
        rows = read_market_file(path)
        first = next(rows, None)  # type: ignore[call-overload]
        if type(first) is not FundingRateSettled:
            continue
        if (first.venue, first.symbol) not in markets:
            raise DataError(path, None, f"funding of {first.venue}.{first.symbol}, a market without bars in the data "
                                        f"(bars of: {', '.join(sorted('.'.join(m) for m in markets))})")
        streams.append(chain([first], rows))  # type: ignore[arg-type]
    return list(merge_by_time(streams))  # type: ignore[arg-type]


def _paying_funding(events: Iterable[Bar | Trade | Quote], funding: list[FundingRateSettled], bus: InProcessBus,
                    clock: SimClock) -> Iterator[Bar | Trade | Quote]:
    """`events`, with each funding settlement published (and the bus drained) just before the first
    of them after its time, as a paper replay of the same files delivers it: paid by the portfolio on
    what was held then, at the newest price. One after the last event is not paid: the run ends there."""
    pending: list[FundingRateSettled] = []
    for event in merge_by_time([events, funding]):  # a tie: the market event first
        if type(event) is FundingRateSettled:
            pending.append(event)  # type: ignore[arg-type]
            continue
        for settled in pending:
            clock.advance_to(settled.ts_event)
            bus.publish(settled)
            bus.drain()
        pending.clear()
        yield event  # type: ignore[misc]


def _feeding_ticks(events: Iterable[Bar | Trade | Quote | QuoteRun], venues: ShadowAdapter, bus: InProcessBus,
                   clock: SimClock) -> Iterator[Bar]:
    """The bars of `events`; its trades and quotes go to the shadow venues as they come. Straight to
    them, the only actor that reads them: the prices the other actors see stay those of the bars, as
    in any backtest, and a tick costs no publish and no price snapshot. The venue reads no clock, so
    the clock moves to a tick's time only when the venue answered it and the answer is delivered.

    A run of quotes while the venues are quiet (nothing there any quote could fill or cancel) is
    skipped but for its newest quote, which reaches them before the next bar (whose drain carries
    commands) or the end: a quiet venue only needs the newest quote by the next command, and only
    a bar's drain or a tick the venues answered can carry a command (they answer nothing when quiet).
    The trades it keeps meanwhile hold the book it had then beside them: only a command that came
    late would read that, and here every command comes in time (IN_ORDER_RECENT)."""
    on_trade, on_quote, drain, advance, pending = venues.on_market_data, venues.on_quote, bus.drain, clock.advance_to, bus.pending
    quiet = venues.quiet
    skipped: tuple[QuoteBlock, int] | None = None  # where the newest quote the venues have not seen is
    for event in events:
        kind = type(event)
        if kind is tuple:
            block, start, end = event  # type: ignore[misc]
            if quiet():
                skipped = block, end - 1
                continue
            skipped = None
            quote = block.quote
            for i in range(start, end):
                on_quote(quote(i))
                if pending:  # its fills
                    advance(block.times[i])
                    drain()
                    if i + 1 < end and quiet():
                        skipped = block, end - 1
                        break
            continue
        if kind is Bar:
            if skipped is not None:
                on_quote(skipped[0].quote(skipped[1]))  # answered by nothing: the venues are quiet
                skipped = None
            yield event  # type: ignore[misc]
            continue
        if kind is Trade:
            on_trade(event)  # type: ignore[arg-type]
        else:
            on_quote(event)  # type: ignore[arg-type]
        if pending:  # its fills: most ticks answer nothing
            advance(event.ts_event)
            drain()
    if skipped is not None:  # for the orders that close what is held at the end
        on_quote(skipped[0].quote(skipped[1]))


def holds_ticks(paths: Sequence[str | Path]) -> bool:
    """Whether any of the files holds trades or quotes (rather than bars)."""
    return any(type(next(read_market_file(path), None)) in (Trade, Quote) for path in paths)  # type: ignore[call-overload]


def fills_on_ticks(config: Config) -> bool:
    """Whether a venue of the config fills on trades and quotes (the book model) rather than bars."""
    return any(v.fill_model == "book" for c in config.clients for v in c.venues.values())


# ----------------------------------------------------------------------------- config


def config_from_flags(flags: Flags, markets: Iterable[tuple[str, str]]) -> Config:
    """One client, CLIENT, trading one strategy per market (named STRATEGY, or
    `STRATEGY-<SYMBOL>` when there are several markets); no risk limit applies."""
    markets = list(markets)
    _check_flags(flags)
    sizing = (SizingConfig(kind="equity_fraction", fraction=flags.equity_fraction)
              if flags.equity_fraction is not None
              else SizingConfig(kind="fixed", qty=flags.qty if flags.qty is not None else SizingConfig().qty))
    venue = VenueConfig(fee_bps=flags.fee_bps, slippage_bps=flags.slippage_bps, fill=flags.fill)  # type: ignore
    strategies = [
        StrategyConfig(name=STRATEGY if len(markets) == 1 else f"{STRATEGY}-{symbol}", kind=flags.strategy,
                       venue=v, symbol=symbol, params=dict(flags.params or {}), long_only=flags.long_only)
        for v, symbol in markets
    ]
    client = ClientConfig(id=CLIENT, capital=flags.capital, strategies=[s.name for s in strategies], sizing=sizing,
                          risk=LimitsConfig(max_price_age_s=None),
                          venues={v: venue for v in sorted({v for v, _ in markets})})
    return Config(mode="backtest", clients=[client], strategies=strategies)


def _check_flags(flags: Flags) -> None:
    """Named after the command-line flags, which is where these values come from."""
    if flags.qty is not None and flags.equity_fraction is not None:
        raise ValueError("give either --qty or --equity-fraction, not both")
    problems = [f"{flag} must be {rule}, got {value}" for flag, value, ok, rule in (
        ("--qty", flags.qty, flags.qty is None or flags.qty > 0, "> 0"),
        ("--equity-fraction", flags.equity_fraction,
         flags.equity_fraction is None or 0 < flags.equity_fraction <= 10, "in (0, 10]"),
        ("--capital", flags.capital, flags.capital > 0, "> 0"),
        ("--fee-bps", flags.fee_bps, flags.fee_bps >= 0, ">= 0"),
        ("--slippage-bps", flags.slippage_bps, flags.slippage_bps >= 0, ">= 0"),
    ) if not ok]
    if problems:
        raise ValueError("; ".join(problems))


def as_backtest(config: Config) -> Config:
    """A config file's setup for a backtest: every venue simulated (shadow), nothing held back
    by dry_run, since no order leaves the process anyway."""
    replace = msgspec.structs.replace
    clients = [replace(c, venues={name: replace(v, kind="shadow") for name, v in c.venues.items()})
               for c in config.clients]
    return replace(config, mode="backtest", dry_run=False, clients=clients)


# ----------------------------------------------------------------------------- run


def run(config: Config, bars: Iterable[Bar] | Iterable[Bar | Trade | Quote], ticks: bool = False,
        funding: list[FundingRateSettled] | None = None) -> Result:
    """Trade `bars` (time-ordered) through the actors configured by `config`; with `ticks`, the
    trades and quotes among them too (`open_ticks`); with `funding` (`open_funding`), perpetual
    positions pay it as in paper and live (metrics.json's total_funding, in the equity too)."""
    clock = SimClock()
    # Closed at the end, so everything the run built goes when it returns (InProcessBus.close).
    with closing(InProcessBus()) as bus:
        signal = SignalActor(clock, bus, config.signal_config())
        risk = RiskActor(clock, bus, config.risk_config())
        execution = ExecutionActor(clock, bus, config.execution_config())
        venues = ShadowAdapter(clock, bus, config.execution_config(), max_recent=IN_ORDER_RECENT)
        portfolio = PortfolioActor(clock, bus, config.portfolio_config())
        for actor in (signal, risk, execution, venues, portfolio):
            bus.attach(actor)
        fills: list[OrderFilled] = []
        bus.subscribe(sj.FILLS, fills.append)
        decisions: list[Any] = []  # approvals and order events, for the analytics after the run (no work per bar)
        bus.subscribe(sj.APPROVED, decisions.append)
        bus.subscribe(sj.ORDERS, decisions.append)
        bus.set_trading_enabled(True)
        bus.drain()

        clients = [c.id for c in config.clients]
        if len(clients) == 1:
            marked = partial(portfolio.equity, clients[0])  # called once per bar: no extra frame
        else:
            def marked() -> Decimal:
                return sum((portfolio.equity(c) for c in clients), Decimal(0))

        equity: list[perf.EquityPoint] = []
        on_bar, drain, advance = InOrderMarketData(clock, bus).on_bar, bus.drain, clock.advance_to
        if funding:
            bars = _paying_funding(bars, funding, bus, clock)
        if ticks:
            bars = _feeding_ticks(bars, venues, bus, clock)
        start_ns = None
        n = 0
        ts = -1
        for bar in bars:
            if bar.ts_event != ts:
                ts = bar.ts_event
                advance(ts)
                if start_ns is None:
                    start_ns = bar.ts_open
            else:
                equity.pop()  # several symbols close at this time: one mark after all of them
            on_bar(bar)  # the bar and its price, exactly as live ingest publishes them
            drain()
            equity.append((ts, marked()))
            n += 1
        if n:
            _close_all(bus, portfolio, ts)
            equity[-1] = (ts, marked())
        capital = sum((c.capital for c in config.clients), Decimal(0))
        trips = in_exit_order(portfolio.round_trips())
        metrics = perf.compute(trips, equity, capital, start_ns=start_ns)
        paid = sum((p.funding for p in portfolio.positions().values()), Decimal(0))
        if paid:
            metrics["total_funding"] = paid  # paid (received: < 0), in total_pnl and the equity
        metrics.update(analytics.compute(trips, OrderJournal().feed(decisions), metrics))
        return Result(capital=capital, start_ns=start_ns or 0, bars=n, fills=fills, trips=trips,
                      equity=equity, metrics=metrics, risk=risk.status())


def _close_all(bus: InProcessBus, portfolio: PortfolioActor, ts: int) -> None:
    """A target of 0, reason end_of_data, for every open position; filled at the last close."""
    for (client, venue, symbol), position in sorted(portfolio.positions().items()):
        if position.qty:
            last: PriceSnapshot = bus.kv(sj.price(venue, symbol))
            bus.publish(TargetPosition(
                id=f"{client}.{END_OF_DATA}.{venue}.{symbol}.{ts}", ts_event=ts, client=client, venue=venue,
                symbol=symbol, qty=Decimal(0), strategy=END_OF_DATA, price=last.price, reason=END_OF_DATA))
    bus.drain()
