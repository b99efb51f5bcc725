"""The state-dir lock and pid files: who holds a state, and when a holder is stale."""

from __future__ import annotations

import os
import sys

import pytest

from bosun.runtime.pidfiles import LOCK_FILE, StateInUse, command_of, live_pid, lock_state_dir


def test_a_held_state_dir_is_refused_naming_its_holder(tmp_path):
    fd = lock_state_dir(tmp_path)
    try:
        with pytest.raises(StateInUse, match=rf"in use by another `bosun up`, pid {os.getpid()}: .*python"):
            lock_state_dir(tmp_path)  # a second open file: flock refuses it as it would another process
    finally:
        os.close(fd)


def test_the_lock_of_a_dead_run_is_taken_over(tmp_path):
    (tmp_path / LOCK_FILE).write_text("999999999\nbosun up (long gone)\n")  # no process holds the flock
    fd = lock_state_dir(tmp_path)
    try:
        assert (tmp_path / LOCK_FILE).read_text() == f"{os.getpid()}\n{command_of(os.getpid())}\n"
    finally:
        os.close(fd)


def test_a_pid_file_counts_only_for_a_live_process_of_the_named_program(tmp_path):
    pid_file = tmp_path / "server.pid"
    pid_file.write_text(f"{os.getpid()}\n")
    assert live_pid(pid_file, os.path.basename(os.path.realpath(sys.executable))) == os.getpid()
    assert live_pid(pid_file, "nats-server") is None  # a reused pid: some other program
    pid_file.write_text("999999999\n")
    assert live_pid(pid_file, "nats-server") is None
    assert live_pid(tmp_path / "absent.pid", "nats-server") is None
