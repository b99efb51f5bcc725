"""`bosun up`: the supervisor. Starts the embedded servers unless URLs are given, records
the URLs for `bosun status|halt|resume`, starts the six services as child processes,
turns trading on for paper and shadow modes once every service answers, shows a live
status line, and on Ctrl-C stops everything it started, leaving no process behind.

However `up` itself dies (kill -9 included), its children die with it (bosun.runtime.lifeline);
a lock on the state dir refuses a second `up` on the same state while the first lives; and
each child sees only the environment it needs (bosun.apps.child_env)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import nats
import uvloop
from nats.errors import Error as NatsError
from rich.console import Console
from rich.live import Live

from bosun.apps import control
from bosun.apps import config as config_mod
from bosun.apps.child_env import service_env
from bosun.apps.replay_progress import ReplayProgress, count_events
from bosun.runtime.backlog import durable_backlog
from bosun.runtime.embedded import EmbeddedNats, EmbeddedPostgres, EmbeddedServerError, terminate
from bosun.runtime.lifeline import die_with_parent
from bosun.runtime.pidfiles import StateInUse, lock_state_dir
from bosun.runtime.provision import provision
from bosun.runtime.urls import DATABASE_URL_ENV, NATS_URL_ENV, nats_servers, write_urls

# Ingest starts last, once trading is on, so that no bar is traded through while halted.
CORE_SERVICES = ("portfolio", "execution", "risk", "signal", "alerts")
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
MAX_RESTARTS = 3  # in a row, each within RESTART_WINDOW_S of the previous start
RESTART_WINDOW_S = 600.0
HALT_ON_START = ("risk", "execution")


class Child:
    """One service process, its log file and its restarts."""

    def __init__(self, service: str, argv: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.service, self.argv, self.env = service, argv, env
        self.log_path = log_dir / f"{service}.log"
        self.restarts = 0
        self.started_at = 0.0
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.started_at = time.monotonic()
        with open(self.log_path, "ab") as log:
            # A session of its own: Ctrl-C reaches only `up`, which stops children in order.
            self.proc = subprocess.Popen(self.argv, env=self.env, stdout=log, stderr=log, start_new_session=True,
                                         preexec_fn=die_with_parent())

    def exited(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def log_tail(self, lines: int = 8) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def last_error(self) -> str:
        """The message of the newest error in the service's JSON log, for a person to read."""
        for line in reversed(self.log_tail(50).splitlines()):
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if record.get("level") in ("error", "critical"):
                    return record.get("msg", line)
        return self.log_tail(3)

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc, timeout_s=STOP_TIMEOUT_S)


def effective_config(args, cfg: config_mod.Config) -> config_mod.Config:
    """The config the children run with: the file's, with the command-line overrides."""
    ingest = cfg.ingest
    if args.replay:
        ingest = msgspec.structs.replace(ingest, replay=[str(p.resolve()) for p in args.replay])
    if args.speed is not None:
        ingest = msgspec.structs.replace(ingest, speed=args.speed)
    cfg = msgspec.structs.replace(cfg, ingest=ingest, dry_run=cfg.dry_run or args.dry_run)
    if not ingest.replay:
        return cfg
    # Paper mode: replayed prices drive shadow fills only, never a live venue; and they are old
    # by construction (against the wall clock every one would be stale), so no age limit applies.
    replace = msgspec.structs.replace
    clients = [replace(c, risk=replace(c.risk, max_price_age_s=None),
                       venues={name: replace(v, kind="shadow") for name, v in c.venues.items()})
               for c in cfg.clients]
    return msgspec.structs.replace(cfg, mode="paper", clients=clients)


def main(args) -> int:
    cfg = config_mod.load(args.config)
    for path in args.replay:
        if not path.is_file():
            raise config_mod.ConfigError(f"--replay {path}: no such file")
    cfg = effective_config(args, cfg)
    state_dir = (args.state_dir or Path(cfg.state_dir)).resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    try:
        lock = lock_state_dir(state_dir)  # held until this process exits, however it exits
        try:
            return uvloop.run(Supervisor(cfg, state_dir, exit_when_done=args.exit_when_done).run())
        finally:
            os.close(lock)
    except (StateInUse, EmbeddedServerError) as exc:
        print(f"bosun up: {exc}", file=sys.stderr)
        return 1


class Supervisor:
    def __init__(self, cfg: config_mod.Config, state_dir: Path, *, exit_when_done: bool) -> None:
        self.cfg, self.state_dir, self.exit_when_done = cfg, state_dir, exit_when_done
        self.servers: list[EmbeddedNats | EmbeddedPostgres] = []
        self.children: dict[str, Child] = {}
        self.stopping = asyncio.Event()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stopping.set)
        try:
            return await self._run()
        finally:
            self._stop_all()

    def _start_servers(self) -> tuple[str, str]:
        nats_url = os.environ.get(NATS_URL_ENV)
        if not nats_url:
            server = EmbeddedNats(self.state_dir)
            self.servers.append(server)
            nats_url = server.start()
        database_url = os.environ.get(DATABASE_URL_ENV)
        if not database_url:
            server = EmbeddedPostgres(self.state_dir)
            self.servers.append(server)
            database_url = server.start()
        return nats_url, database_url

    async def _run(self) -> int:
        print(f"bosun up: mode {self.cfg.mode}{' (dry run)' if self.cfg.dry_run else ''}, state in {self.state_dir}")
        if self.cfg.mode == "live" and self.cfg.live.capped:
            print(f"  {self.cfg.live.banner()}")
        # On the main thread: a child's parent-death signal fires when the thread that spawned it ends.
        nats_url, database_url = self._start_servers()
        write_urls(self.state_dir, nats_url=nats_url, database_url=database_url)
        print(f"  NATS        {nats_url}")
        print(f"  PostgreSQL  {database_url}")
        nc = await nats.connect(nats_servers(nats_url), name="bosun-up", max_reconnect_attempts=-1)
        try:
            await provision(nc.jetstream())
            # After any restart trading stays off until a person (or paper mode, below) turns it on.
            await control.set_trading(nc, False)
            self._spawn(nats_url, database_url)
            if not await self._wait_ready(nc, CORE_SERVICES):
                return 1
            if self.cfg.mode in ("paper", "shadow"):
                await control.set_trading(nc, True)
                print("  trading     ON (paper money: shadow fills only); `bosun halt` turns it off")
            else:
                print("  trading     OFF until you run `bosun resume`")
            self.children["ingest"].start()
            print(f"  logs        {self.state_dir / 'logs'}/<service>.log; Ctrl-C stops everything\n")
            return await self._watch(nc)
        finally:
            with contextlib.suppress(Exception):
                await nc.close()

    def _spawn(self, nats_url: str, database_url: str) -> None:
        log_dir = self.state_dir / "logs"
        log_dir.mkdir(exist_ok=True)
        config_path = self.state_dir / "effective.json"
        config_path.write_bytes(msgspec.json.encode(self.cfg))
        webhook_envs = {w.url_env for w in self.cfg.alerts.webhooks}
        for service in (*CORE_SERVICES, "ingest"):
            argv = [sys.executable, "-m", "bosun.apps.cli", "run", service,
                    "--config", str(config_path), "--state-dir", str(self.state_dir)]
            env = service_env(service, os.environ, nats_url=nats_url, database_url=database_url,
                              webhook_envs=webhook_envs)
            self.children[service] = Child(service, argv, env, log_dir)
        for service in CORE_SERVICES:
            self.children[service].start()

    async def _wait_ready(self, nc, services) -> bool:
        deadline = time.monotonic() + READY_TIMEOUT_S
        waiting = set(services)
        while waiting:
            for service in list(waiting):
                child = self.children[service]
                if child.exited() is not None:
                    print(f"bosun up: {service} exited with code {child.exited()} while starting:\n{child.log_tail()}",
                          file=sys.stderr)
                    return False
                if await control.ping(nc, service):
                    waiting.discard(service)
            if time.monotonic() > deadline:
                print(f"bosun up: no answer from {', '.join(sorted(waiting))} after {READY_TIMEOUT_S:.0f}s; "
                      f"see their logs in {self.state_dir / 'logs'}", file=sys.stderr)
                return False
            if self.stopping.is_set():
                return False
            await asyncio.sleep(0.2)
        return True

    async def _watch(self, nc) -> int:
        """Show the status until Ctrl-C (a replay's progress above it, on a terminal redrawn in
        place); restart a crashed service a bounded number of times."""
        if not self.cfg.ingest.replay:
            return await self._watch_lines(nc, None, None)
        progress = ReplayProgress()
        counting = asyncio.create_task(asyncio.to_thread(count_events, self.cfg.ingest.replay, self.cfg.ingest.venue))

        def counted(task: asyncio.Task[tuple[int, str]]) -> None:
            # Unreadable files stop ingest, which says why; the bar then just has no total.
            if not task.cancelled() and task.exception() is None:
                progress.counted(*task.result())

        counting.add_done_callback(counted)
        try:
            if not sys.stdout.isatty():
                return await self._watch_lines(nc, progress, None)
            with Live(auto_refresh=False, console=Console()) as live:
                return await self._watch_lines(nc, progress, live)
        finally:
            counting.cancel()

    async def _watch_lines(self, nc, progress: ReplayProgress | None, live: Live | None) -> int:
        tty = sys.stdout.isatty()
        last_print = 0.0
        while not self.stopping.is_set():
            code = await self._check_children()
            if code is not None:
                return code
            now = time.monotonic()
            try:
                if self.exit_when_done and self.children["ingest"].exited() == 0 \
                        and not await durable_backlog(nc.jetstream()):
                    print(control.render(await control.gather(nc)))
                    print("bosun up: replay traded through; stopping")
                    return 0
                line = control.render_line(await control.gather(nc)) if tty or now - last_print >= 5.0 else None
                if progress is not None:
                    progress.update(now, (await nc.jetstream().stream_info("MARKET")).state.messages)
            except NatsError as exc:  # NATS restarting or electing a leader: say so, keep supervising
                line = f"NATS not answering ({type(exc).__name__}); the services reconnect on their own"
            if live is not None and progress is not None and line is not None:
                live.update(progress.view(line), refresh=True)
            elif line is not None:
                if progress is not None:
                    line = f"{progress.line()} | {line}"
                print(f"\r\x1b[2K{line}" if tty else line, end="" if tty else "\n", flush=True)
                last_print = now
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), 1.0)
        print()
        return 0

    async def _check_children(self) -> int | None:
        for service, child in self.children.items():
            code = child.exited()
            if code is None or (service == "ingest" and code == 0):
                continue
            if service == "ingest" and code == control.EXIT_STREAM_UNAVAILABLE:
                print(f"\nbosun up: the live market stream cannot be reached.\n{child.last_error()}\n"
                      f"Run offline instead: bosun up --replay FILE --speed N", file=sys.stderr)
                return 1
            if time.monotonic() - child.started_at > RESTART_WINDOW_S:
                child.restarts = 0  # it ran well for a while: this is a new incident, not the same one
            if child.restarts >= MAX_RESTARTS:
                print(f"\nbosun up: {service} keeps failing (exit {code}); stopping.\n{child.log_tail()}",
                      file=sys.stderr)
                return 1
            child.restarts += 1
            halted = " (it halts trading at start: `bosun resume` turns it back on)" if service in HALT_ON_START else ""
            print(f"\nbosun up: {service} exited with code {code}; restart {child.restarts}/{MAX_RESTARTS}{halted}",
                  file=sys.stderr)
            child.start()
        return None

    def _stop_all(self) -> None:
        # Market data first, then the services, then the servers they talk to.
        for service in config_mod.SERVICES:
            if service in self.children:
                self.children[service].stop()
        for server in reversed(self.servers):
            server.stop()
