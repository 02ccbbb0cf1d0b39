"""Warnings about clients, rate-limited per address, shared by the web worker and the shim.

A misbehaving client can cause thousands of the same warning a second; one
line per address every so often, with a count of the ones held back, tells
the operator who and how often without flooding the log.
"""

import logging
import time
from collections import Counter

WARN_EVERY_S = 10.0


class RateLimitedWarnings:
    """One warning per client address every `every` seconds, counting the ones held back."""

    def __init__(self, log: logging.Logger, every: float = WARN_EVERY_S, remembered: int = 10_000):
        self._log = log
        self._every = every
        self._remembered = remembered
        self._last: dict[str, float] = {}
        self._held_back: Counter[str] = Counter()
        self._what: dict[str, str] = {}  # of the warnings held back, by client

    def warn(self, host: str, what: str) -> None:
        now = time.monotonic()
        if host in self._last and now - self._last[host] < self._every:
            self._held_back[host] += 1
            self._what[host] = what
            return
        if len(self._last) >= self._remembered:
            self._last.clear()
            self._held_back.clear()
            self._what.clear()
        self._last[host] = now
        held_back = self._held_back.pop(host, 0)
        self._what.pop(host, None)
        more = f" ({held_back} more since the last warning)" if held_back else ""
        self._log.warning("client %s %s%s", host, what, more)

    def flush(self) -> None:
        """Log what is still held back, a line per client, so that a stop loses no count."""
        for host, count in self._held_back.items():
            self._log.warning(
                "client %s %s (%d more since the last warning)", host, self._what[host], count
            )
        self._held_back.clear()
        self._what.clear()


def client_host(addr) -> str:
    """The address part of a socket's peer (IPv4 or IPv6), or the peer as it is otherwise."""
    return addr[0] if isinstance(addr, tuple) else str(addr or "-")
