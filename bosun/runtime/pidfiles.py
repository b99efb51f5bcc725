"""Who holds a state dir: the `bosun up` lock, and the pid file of a server on a store.

The lock is an flock on `<state_dir>/up.lock`: the kernel drops it when its holder dies,
however it dies, so a lock left by a dead run is simply taken over; the file only tells a
refused second run who holds it. A pid file cannot be trusted that way (the pid may have been
reused), so a pid counts only if it is alive and runs the program named."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_FILE = "up.lock"


class StateInUse(RuntimeError):
    pass


def command_of(pid: int) -> str | None:
    """The command line of a live process, None if there is none (a zombie has exited)."""
    try:
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return None
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except (OSError, IndexError):
        return None


def live_pid(pid_file: Path, program: str) -> int | None:
    """The pid in `pid_file` if that process is alive and is `program` (its executable's name)."""
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None
    return pid if command_of(pid) is not None and Path(exe).name == program else None


def lock_state_dir(state_dir: Path) -> int:
    """Hold `state_dir` for this process until it exits; the lock's open file descriptor.
    Raises StateInUse naming the holder's pid and command if another process holds it."""
    path = state_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 4096).decode(errors="replace").split("\n", 1)
        os.close(fd)
        pid = holder[0].strip() or "unknown"
        command = holder[1].strip() if len(holder) > 1 and holder[1].strip() else "(command unknown)"
        raise StateInUse(f"{state_dir} is in use by another `bosun up`, pid {pid}: {command}\n"
                         f"Stop that one first (Ctrl-C in its terminal, or kill {pid}), "
                         f"or give this one another --state-dir.") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n{command_of(os.getpid())}\n".encode())
    return fd
