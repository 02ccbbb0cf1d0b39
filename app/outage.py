"""The database going away and coming back: an error when it goes, a summary while it
stays away, a line when it is back, instead of an error for every request meanwhile.

Each worker process keeps its own account, so each logs its own lines.
"""

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger("app.web.database")

SUMMARY_EVERY_S = 30.0


class DatabaseOutage:
    def __init__(
        self, summary_every_s: float = SUMMARY_EVERY_S, clock: Callable[[], float] = time.monotonic
    ):
        self._summary_every_s = summary_every_s
        self._clock = clock
        self._lock = threading.Lock()
        self._since: float | None = None  # when the first request failed; None while up
        self._last_summary = 0.0
        self._failed = 0  # requests failed since

    def request_failed(self, cause: str) -> None:
        """A request failed, wholly or partly, for want of the database."""
        with self._lock:
            now = self._clock()
            if self._since is None:
                self._since = self._last_summary = now
                self._failed = 1
                log.error("database unavailable: %s; requests fail until it is back", cause)
                return
            self._failed += 1
            if now - self._last_summary >= self._summary_every_s:
                self._last_summary = now
                log.error(
                    "database still unavailable after %.0f s: %d requests failed so far (%s)",
                    now - self._since,
                    self._failed,
                    cause,
                )

    def request_served(self) -> None:
        """A request had its items answered, none failing for want of the database:
        if it was away, it is back. (Items refused before the database is asked,
        an order for 0 shares say, count too: a rare false "back" costs a line.)"""
        if self._since is None:  # the usual case, without taking the lock
            return
        with self._lock:
            if self._since is None:
                return
            log.warning(
                "database back after %.0f s; %d requests failed meanwhile",
                self._clock() - self._since,
                self._failed,
            )
            self._since = None
