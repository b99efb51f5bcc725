"""The environment a child process sees: an allow-list, never the whole of ours, so that a
secret set for one process (a venue key for execution) reaches no other."""

from __future__ import annotations

from collections.abc import Mapping

_PLAIN_NAMES = frozenset({"PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR"})


def plain_env(environ: Mapping[str, str]) -> dict[str, str]:
    """What every process may see: where programs are, who and where it runs, the locale."""
    return {k: v for k, v in environ.items() if k in _PLAIN_NAMES or k.startswith("LC_")}
