"""free_port(): ports handed to servers that bind them later stay out of the way of outgoing
connections (the kernel's ephemeral range) and of each other."""

from __future__ import annotations

import random
import socket

from bosun.runtime import embedded
from bosun.runtime.embedded import _ephemeral_floor, free_port


def test_ports_are_below_the_ephemeral_range_distinct_and_free() -> None:
    random.seed(0)  # as a test may: the picks do not follow the global generator
    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)
    assert all(1024 < p < _ephemeral_floor() for p in ports)
    for port in ports[:20]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", port))


class _Picks:
    """A generator stub: the given ports, in order."""

    def __init__(self, *ports: int) -> None:
        self.ports = list(ports)

    def randrange(self, _start: int, _stop: int) -> int:
        return self.ports.pop(0)


def test_a_port_in_use_or_handed_out_lately_is_skipped(monkeypatch) -> None:
    handed = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = held.getsockname()[1]
        fresh = next(p for p in range(21_000, 22_000) if p not in (handed, taken) and p not in embedded._picked)
        monkeypatch.setattr(embedded, "_random", _Picks(taken, handed, fresh))
        assert free_port() == fresh
