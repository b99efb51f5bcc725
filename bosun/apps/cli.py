"""The `bosun` command. Each subcommand imports what it needs only when it runs, so
`bosun halt` and `bosun backtest` start fast."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bosun.apps.config import SERVICES
from bosun.runtime.config import ConfigError



def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="TOML config file (default: built-in demo config)")
    p.add_argument("--state-dir", type=Path, help="where embedded servers keep data and `bosun up` records its URLs "
                   "(default: the config's state_dir, .bosun)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bosun", description="event-driven trading over NATS JetStream")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="start NATS, PostgreSQL (embedded unless URLs are set) and the six services")
    _common(up)
    up.add_argument("--replay", type=Path, action="append", default=[], metavar="FILE",
                    help="replay kline/trade files instead of the live Binance stream (paper mode); repeatable")
    up.add_argument("--speed", type=float, default=None,
                    help="replay speed as a multiple of real time; 0 = as fast as possible")
    up.add_argument("--dry-run", action="store_true", help="run everything but never send an order")
    up.add_argument("--exit-when-done", action="store_true",
                    help="with --replay: stop once the replay has been traded through")

    run = sub.add_parser("run", help="run one service in the foreground")
    run.add_argument("service", choices=SERVICES)
    _common(run)

    status = sub.add_parser("status", help="print trading state, prices, positions, PnL and orders once")
    _common(status)
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")
    status.add_argument("--watch", action="store_true", help="a live view, redrawn until Ctrl-C")
    status.add_argument("--every", type=float, default=1.0, metavar="S", help="seconds between redraws (--watch)")
    status.add_argument("--client", metavar="C", help="one client's book from the portfolio service: positions, "
                        "PnL, exposure and metrics")

    for name, text in (("halt", "turn trading OFF for everyone (kill switch), or for one client"),
                       ("reduce", "let only orders that reduce exposure through, for everyone or one client"),
                       ("resume", "turn trading back ON, for everyone or one client (and its markets)")):
        p = sub.add_parser(name, help=text)
        _common(p)
        p.add_argument("--client", metavar="C", help="only this client's scope")
        p.add_argument("--reason", metavar="TEXT", help="why, for the audit trail and the alert")
        if name == "halt":
            p.add_argument("--flatten", action="store_true",
                           help="also close every open position in the scope with reduce-only market orders")

    audit = sub.add_parser("audit", help="print the audit trail (verdicts, state changes, orders) as JSON lines")
    _common(audit)
    audit.add_argument("--since", metavar="T", help="from this time: ISO 8601 (2026-12-06T03:00:00Z) or 30s, 15m, 2h, 1d")
    audit.add_argument("--client", metavar="C", help="only this client's events")
    audit.add_argument("--kind", metavar="K", help="approve, clamp, reject, state, breaker, guard, or an event type")

    from bosun.apps import backtest_cli, nats_users, report_cli
    from bosun.apps.exchange_sim import cli as exchange_sim

    backtest_cli.add_parser(sub)
    report_cli.add_parser(sub)
    exchange_sim.add_parser(sub)
    nats_users.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "backtest":
            from bosun.apps import backtest_cli

            return backtest_cli.main(args)
        if args.command == "report":
            from bosun.apps import report_cli

            return report_cli.main(args)
        if args.command == "exchange-sim":
            from bosun.apps.exchange_sim import cli as exchange_sim

            return exchange_sim.main(args)
        if args.command == "nats-users":
            from bosun.apps import nats_users

            return nats_users.main(args)
        if args.command == "up":
            from bosun.apps import up

            return up.main(args)
        if args.command == "run":
            from bosun.apps import run

            return run.main(args)
        from bosun.apps import control

        return control.main(args)
    except ConfigError as exc:
        print(f"bosun: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
