"""`bosun up` as a supervisor that cannot orphan: its children die with it however it dies,
one `up` per state dir, and only execution sees the venue keys. Each run starts its own
embedded nats-server and PostgreSQL (no URLs in its environment) in a state dir others may
search (as root, postgres runs as another user)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from bosun.runtime.pidfiles import LOCK_FILE, command_of
from tests.datafiles import BTC_1M, data_file, write_slice
from tests.processes import Up, bosun_argv, descendants, wait_gone

pytestmark = pytest.mark.integration

GONE_TIMEOUT_S = 30.0
PROGRESS_TIMEOUT_S = 30.0
FAKE_KEY = f"fake-key-{uuid.uuid4().hex}"
KEYS = {"BOSUN_BINANCE_API_KEY": FAKE_KEY, "BOSUN_BINANCE_API_SECRET": FAKE_KEY}


@pytest.fixture
def replay(tmp_path: Path) -> Path:
    return write_slice(data_file(BTC_1M), tmp_path / "BTCUSDT_1m.csv", 50)


def test_only_execution_sees_the_venue_keys_and_a_second_up_on_the_state_is_refused(searchable_tmp_path, replay):
    state_dir = searchable_tmp_path / "state"
    up = Up(state_dir, "--replay", str(replay), "--speed", "1", env=KEYS)
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
        up.stop(GONE_TIMEOUT_S)
    assert up.proc.returncode == 0, up.output()
    assert wait_gone(everyone, GONE_TIMEOUT_S) == []


def test_kill_9_of_up_takes_every_child_along_and_the_next_up_takes_the_state_over(searchable_tmp_path, replay):
    state_dir = searchable_tmp_path / "state"
    first = Up(state_dir, "--replay", str(replay), "--speed", "1", env=KEYS)
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

    again = Up(state_dir, "--replay", str(replay), "--speed", "1", env=KEYS)  # the lock of the dead run is taken over, its stores reused
    try:
        again.wait_ready()
        assert (state_dir / LOCK_FILE).read_text().split()[0] == str(again.proc.pid)
    finally:
        everyone = descendants(again.proc.pid)
        again.stop()
    assert wait_gone(everyone, GONE_TIMEOUT_S) == []


def test_a_replay_shows_its_progress_beside_the_status(searchable_tmp_path, replay):
    up = Up(searchable_tmp_path / "state", "--replay", str(replay), "--speed", "60")  # a bar a second
    try:
        up.wait_ready()
        deadline = time.monotonic() + PROGRESS_TIMEOUT_S
        # not a terminal: a line every 5 s, the replay's progress first, then the compact status
        while not re.search(r"^replay [1-9]\d*/50 bars \(\d+\.\d%\), [\d,]+ bars/s, .* \| trading ON",
                            up.output(), re.MULTILINE):
            assert time.monotonic() < deadline, f"no progress line in {PROGRESS_TIMEOUT_S}s:\n{up.output()}"
            time.sleep(0.2)  # polling a process's output with a deadline
    finally:
        up.stop(GONE_TIMEOUT_S)
