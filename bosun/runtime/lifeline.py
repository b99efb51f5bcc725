"""Children that die with their parent, however the parent dies.

`bosun up` stops its children in order on Ctrl-C, but a kill -9 runs none of that: without
this, nats-server, PostgreSQL and the services would be re-parented to init and go on
trading unsupervised. Linux's PR_SET_PDEATHSIG has the kernel deliver a signal to the child
when its parent goes, whatever the cause. It applies to the direct child only, so every
server is started in the foreground as our direct child (postgres itself, not pg_ctl);
PostgreSQL's own workers leave when they see their postmaster gone.

The signal is sent when the *thread* that spawned the child exits, so children are spawned
from the main thread. It is cleared by a change of user id, which is why it is set in the
preexec_fn: CPython runs that after `user=` has switched users."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None


def die_with_parent(sig: signal.Signals = signal.SIGTERM) -> Callable[[], None] | None:
    """A `preexec_fn` for Popen: the child receives `sig` when this process dies. None off
    Linux, where no such guarantee exists (children then outlive a kill -9 of the parent)."""
    if _prctl is None:
        return None
    prctl, parent = _prctl, os.getpid()

    def in_child() -> None:
        if prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            os._exit(126)  # unguarded, the child could outlive us: better not to start it at all
        if os.getppid() != parent:  # the parent died between fork and prctl: nobody will signal us
            os.kill(os.getpid(), sig)

    return in_child
