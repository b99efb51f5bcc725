"""The Grafana dashboards, built in code (grafana-foundation-sdk) and written as JSON into
infra/grafana/dashboards/, which Grafana provisions (infra/grafana/provisioning/).

    .venv/bin/python infra/grafana/build.py      # after a change; commit the JSON it writes

tests/unit/test_grafana_dashboards.py checks that the committed JSON is what this produces and
that every query names only metrics the services export (bosun.runtime.telemetry)."""

from __future__ import annotations

import sys
from pathlib import Path

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.builders.stat import Panel as Stat
from grafana_foundation_sdk.builders.timeseries import Panel as Timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import (DataSourceRef, Threshold, ThresholdsMode, ValueMap,
                                                     ValueMappingResult, VariableRefresh)

OUT = Path(__file__).resolve().parent / "dashboards"
PROMETHEUS = DataSourceRef(type_val="prometheus", uid="prometheus")  # provisioning/datasources/
MAX_PRICE_AGE_S = 120  # the default of risk's max_price_age_s: older is stale to risk too
CLIENT = 'client=~"$client"'


def _query(expr: str, legend: str, ref: str) -> Dataquery:
    return Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(PROMETHEUS)


def _targets(panel, queries: list[tuple[str, str]]):
    for ref, (expr, legend) in zip("ABCDEFGH", queries):
        panel = panel.with_target(_query(expr, legend, ref))
    return panel


def _steps(*steps: tuple[float | None, str]) -> db.ThresholdsConfig:
    return db.ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps([Threshold(value=v, color=c) for v, c in steps])


def stat(title: str, description: str, queries: list[tuple[str, str]], *, unit: str = "none",
         steps: tuple[tuple[float | None, str], ...] = ((None, "green"),), mapping: dict[str, tuple[str, str]] | None = None,
         width: int = 6) -> Stat:
    panel = (Stat().title(title).description(description).datasource(PROMETHEUS).unit(unit)
             .thresholds(_steps(*steps)).height(5).span(width))
    if mapping:
        panel = panel.mappings([ValueMap({value: ValueMappingResult(text=text, color=color)
                                          for value, (text, color) in mapping.items()})])
    return _targets(panel, queries)


def series(title: str, description: str, queries: list[tuple[str, str]], *, unit: str = "none",
           width: int = 12) -> Timeseries:
    panel = Timeseries().title(title).description(description).datasource(PROMETHEUS).unit(unit).height(8).span(width)
    return _targets(panel, queries)


def _dashboard(uid: str, title: str, description: str) -> db.Dashboard:
    return (db.Dashboard(title).uid(uid).description(description).tags(["bosun"]).refresh("10s")
            .time("now-1h", "now").timezone("utc").readonly())


ON_OFF = {"0": ("HALTED", "red"), "1": ("ON", "green")}
UP_DOWN = {"0": ("DOWN", "red"), "1": ("UP", "green")}
SCOPE_STATES = {"0": ("ACTIVE", "green"), "1": ("REDUCING", "orange"), "2": ("HALTED", "red")}  # bosun_scope_state


def overview() -> db.Dashboard:
    return (_dashboard("bosun-overview", "bosun: am I safe right now?",
                       "Trading state per scope, price staleness, open orders, fills, positions, PnL, breaches "
                       "and errors")
            .with_row(db.Row("Right now"))
            .with_panel(stat("Trading", "The kill switch as risk and execution see it (KV control)",
                             [("bosun_trading_enabled", "{{service}}")], mapping=ON_OFF,
                             steps=((None, "red"), (1, "green"))))
            .with_panel(stat("Trading state per scope", "Global (halted while the kill switch is off), each client, "
                             "and each client's market or own switch while it is not active, as risk applies them",
                             [("bosun_scope_state", "{{scope}}")], mapping=SCOPE_STATES,
                             steps=((None, "green"), (1, "orange"), (2, "red")), width=12))
            .with_panel(stat("Services", "Each service's metrics endpoint, as Prometheus last scraped it",
                             [('up{job="bosun"}', "{{instance}}")], mapping=UP_DOWN, steps=((None, "red"), (1, "green"))))
            .with_panel(stat("Price age", f"Since the last price's event time; risk refuses past {MAX_PRICE_AGE_S} s",
                             [("time() - bosun_price_event_timestamp_seconds", "{{market}}")], unit="s",
                             steps=((None, "green"), (MAX_PRICE_AGE_S, "red"))))
            .with_panel(stat("Open orders", "Working at a venue, per client",
                             [("bosun_open_orders", "{{client}}")], steps=((None, "green"), (1, "yellow"))))
            .with_panel(stat("Breaches (1 h)", "Targets refused by a risk limit in the last hour",
                             [("sum(increase(bosun_risk_breaches_total[1h]))", "breaches")],
                             steps=((None, "green"), (1, "yellow"))))
            .with_panel(stat("Dead letters (1 h)", "Inputs a service could not decode or handle (dlq.<service>)",
                             [("sum(increase(bosun_dead_letters_total[1h]))", "dead letters")],
                             steps=((None, "green"), (1, "red"))))
            .with_panel(stat("Fills (1 h)", "Fills applied by execution in the last hour",
                             [("sum(increase(bosun_fills_total[1h]))", "fills")], width=6))
            .with_panel(stat("Rejects (1 h)", "Orders refused by a venue, execution's guard or a dry run, last hour",
                             [("sum(increase(bosun_order_rejects_total[1h]))", "rejects")],
                             steps=((None, "green"), (1, "yellow")), width=6))
            .with_panel(stat("Equity", "Per client, in quote units", [("bosun_equity", "{{client}}")], width=6))
            .with_panel(stat("PnL", "Realized (after fees) plus unrealized, per client",
                             [("sum by (client) (bosun_pnl)", "{{client}}")], steps=((None, "red"), (0, "green")),
                             width=6))
            .with_row(db.Row("Last hour"))
            .with_panel(series("Positions", "Base units per client and market (negative: short)",
                               [("bosun_position", "{{client}} {{market}}")]))
            .with_panel(series("Breaches by limit", "Refused targets per second, by the limit that refused them",
                               [("sum by (limit) (rate(bosun_risk_breaches_total[$__rate_interval]))", "{{limit}}")],
                               unit="ops")))


def services() -> db.Dashboard:
    quantile = "histogram_quantile({q}, sum by (service, le) (rate(bosun_handler_seconds_bucket[$__rate_interval])))"
    return (_dashboard("bosun-services", "bosun: services", "Per service: handler latency, throughput, consumer lag")
            .with_panel(series("Handler latency p50 / p99", "A message's round, from its start to the ack (queueing before it "
                               "not included)",
                               [(quantile.format(q=0.5), "{{service}} p50"), (quantile.format(q=0.99), "{{service}} p99")],
                               unit="s", width=24))
            .with_panel(series("Messages in", "Inputs handled per second",
                               [("sum by (service) (rate(bosun_messages_in_total[$__rate_interval]))", "{{service}}")],
                               unit="ops"))
            .with_panel(series("Messages out", "Published to JetStream per second",
                               [("sum by (service) (rate(bosun_messages_out_total[$__rate_interval]))", "{{service}}")],
                               unit="ops"))
            .with_panel(series("Consumer lag", "Messages of each input's stream not yet delivered to the service, "
                               "and delivered but not yet acked (durable inputs)",
                               [("bosun_consumer_pending_messages", "{{service}} {{input}} pending"),
                                ("bosun_consumer_ack_pending_messages", "{{service}} {{input}} unacked")]))
            .with_panel(series("Dead letters", "Per second, per service",
                               [("sum by (service) (rate(bosun_dead_letters_total[$__rate_interval]))", "{{service}}")],
                               unit="ops"))
            .with_panel(series("NATS reconnects (1 h)", "Connections lost and regained, per service",
                               [("sum by (service) (increase(bosun_nats_reconnects_total[1h]))", "{{service}}")])))


def clients() -> db.Dashboard:
    variable = (db.QueryVariable("client").label("client").datasource(PROMETHEUS)
                .query("label_values(bosun_equity, client)").refresh(VariableRefresh.ON_DASHBOARD_LOAD)
                .multi(True).include_all(True))
    return (_dashboard("bosun-clients", "bosun: clients",
                       "Per client: equity, PnL, drawdown, exposure, positions, orders, fills, trading state")
            .with_variable(variable)
            .with_panel(series("Equity", "Capital plus PnL less fees", [(f"bosun_equity{{{CLIENT}}}", "{{client}}")]))
            .with_panel(series("PnL", "Realized (after fees) and unrealized",
                               [(f"bosun_pnl{{{CLIENT}}}", "{{client}} {{kind}}")]))
            .with_panel(series("Drawdown from the 24 h peak", "1 - equity / its highest value in the last 24 h",
                               [(f"1 - bosun_equity{{{CLIENT}}} / max_over_time(bosun_equity{{{CLIENT}}}[1d])",
                                 "{{client}}")], unit="percentunit"))
            .with_panel(series("Below the peak", "Equity below its highest since portfolio started, in quote units",
                               [(f"bosun_drawdown{{{CLIENT}}}", "{{client}}")]))
            .with_panel(series("Exposure", "Positions valued at their marks: gross and net, in quote units",
                               [(f"bosun_exposure{{{CLIENT}}}", "{{client}} {{kind}}")]))
            .with_panel(series("Funding paid", "Perpetual funding paid (< 0: received), within realized PnL",
                               [(f"bosun_funding_paid{{{CLIENT}}}", "{{client}}")]))
            .with_panel(series("Markets without a fresh price", "Held, but marked at a stale or missing price",
                               [(f"bosun_unmarked_markets{{{CLIENT}}}", "{{client}}")]))
            .with_panel(series("Positions", "Base units per market",
                               [(f"bosun_position{{{CLIENT}}}", "{{client}} {{market}}")]))
            .with_panel(series("Open orders", "Working at a venue", [(f"bosun_open_orders{{{CLIENT}}}", "{{client}}")]))
            .with_panel(series("Fills and rejects", "Per second: fills applied, orders refused",
                               [(f"sum by (client) (rate(bosun_fills_total{{{CLIENT}}}[$__rate_interval]))",
                                 "{{client}} fills"),
                                (f"sum by (client) (rate(bosun_order_rejects_total{{{CLIENT}}}[$__rate_interval]))",
                                 "{{client}} rejects")], unit="ops"))
            .with_panel(series("Trading state", "The strictest of the client's scopes: 0 active, 1 reducing, 2 halted "
                               "(the global scope is on the overview)",
                               [(f"max by (client) (bosun_scope_state{{{CLIENT}}})", "{{client}}")])))


DASHBOARDS = {"overview": overview, "services": services, "clients": clients}


def render() -> dict[str, str]:
    """File name -> JSON text, as committed."""
    encoder = JSONEncoder(sort_keys=True, indent=2)
    return {f"{name}.json": encoder.encode(build().build()) + "\n" for name, build in DASHBOARDS.items()}


def main() -> int:
    OUT.mkdir(exist_ok=True)
    for name, text in render().items():
        (OUT / name).write_text(text)
        print(f"wrote {OUT / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
