"""`bosun up` as a supervisor that cannot orphan: its children die with it however it dies,
one `up` per state dir, and only execution sees the venue keys. Each run starts its own
embedded nats-server and PostgreSQL (no URLs in its environment) in a state dir others may
search (as root, postgres runs as another user)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from bosun.runtime.embedded import terminate
from bosun.runtime.pidfiles import LOCK_FILE, command_of
from tests.datafiles import BTC_1M, data_file, write_slice
from tests.processes import bosun_argv, descendants, parent_of, wait_gone

pytestmark = pytest.mark.integration

READY_TIMEOUT_S = 90.0
GONE_TIMEOUT_S = 30.0
SERVICES = ("ingest", "signal", "risk", "execution", "portfolio", "alerts")
FAKE_KEY = f"fake-key-{uuid.uuid4().hex}"


def role(pid: int) -> str:
    """`nats-server`, `postgres`, or the service a `bosun run <service>` child runs."""
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    if b"run" in argv:
        return argv[argv.index(b"run") + 1].decode()
    return Path(argv[0].decode()).name


class Up:
    """`bosun up --replay` in real time (it stays up), its output in a file."""

    def __init__(self, state_dir: Path, replay: Path) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("BOSUN_NATS_URL", "BOSUN_DATABASE_URL")}
        env |= {"BOSUN_BINANCE_API_KEY": FAKE_KEY, "BOSUN_BINANCE_API_SECRET": FAKE_KEY}
        self.out = state_dir.parent / f"up-{uuid.uuid4().hex[:8]}.out"
        with open(self.out, "wb") as out:
            self.proc = subprocess.Popen(bosun_argv("up", "--state-dir", str(state_dir), "--replay", str(replay),
                                                    "--speed", "1"), env=env, stdout=out, stderr=out)

    def output(self) -> str:
        return self.out.read_text(errors="replace")

    def wait_ready(self) -> dict[str, int]:
        """Once every service runs: the pid of each child by its role."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while "Ctrl-C stops everything" not in self.output():
            assert self.proc.poll() is None, f"bosun up exited with {self.proc.returncode}:\n{self.output()}"
            assert time.monotonic() < deadline, f"bosun up not ready in {READY_TIMEOUT_S}s:\n{self.output()}"
            time.sleep(0.1)  # polling a start-up with a deadline, not synchronising on an event
        children = {role(pid): pid for pid in descendants(self.proc.pid) if parent_of(pid) == self.proc.pid}
        assert set(children) == {*SERVICES, "nats-server", "postgres"}, children
        return children

    def stop(self) -> None:
        terminate(self.proc, signal.SIGINT, timeout_s=GONE_TIMEOUT_S)


@pytest.fixture
def replay(tmp_path: Path) -> Path:
    return write_slice(data_file(BTC_1M), tmp_path / "BTCUSDT_1m.csv", 50)


def test_only_execution_sees_the_venue_keys_and_a_second_up_on_the_state_is_refused(searchable_tmp_path, replay):
    state_dir = searchable_tmp_path / "state"
    up = Up(state_dir, replay)
    try:
        children = up.wait_ready()
        holders = {name for name, pid in children.items()
                   if FAKE_KEY.encode() in Path(f"/proc/{pid}/environ").read_bytes()}
        assert holders == {"execution"}

        second = subprocess.run(bosun_argv("up", "--state-dir", str(state_dir), "--replay", str(replay)),
                                capture_output=True, text=True, timeout=60)
        assert second.returncode == 1
        assert f"{state_dir} is in use by another `bosun up`, pid {up.proc.pid}: {command_of(up.proc.pid)}" \
            in second.stderr
        assert up.proc.poll() is None and all(command_of(pid) for pid in children.values())  # untouched
    finally:
        everyone = descendants(up.proc.pid)
        up.stop()
    assert up.proc.returncode == 0, up.output()
    assert wait_gone(everyone, GONE_TIMEOUT_S) == []


def test_kill_9_of_up_takes_every_child_along_and_the_next_up_takes_the_state_over(searchable_tmp_path, replay):
    state_dir = searchable_tmp_path / "state"
    first = Up(state_dir, replay)
    try:
        first.wait_ready()
        everyone = descendants(first.proc.pid)  # postgres's workers too
    finally:
        first.proc.kill()
        first.proc.wait()
    left = {pid: command_of(pid) for pid in wait_gone(everyone, GONE_TIMEOUT_S)}
    for pid in left:  # orphans must not outlive a failed test
        os.kill(pid, signal.SIGKILL)
    assert left == {}

    again = Up(state_dir, replay)  # the lock of the dead run is taken over, its stores reused
    try:
        again.wait_ready()
        assert (state_dir / LOCK_FILE).read_text().split()[0] == str(again.proc.pid)
    finally:
        everyone = descendants(again.proc.pid)
        again.stop()
    assert wait_gone(everyone, GONE_TIMEOUT_S) == []
