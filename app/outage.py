"""A part going away and coming back: an error when it goes, a summary while it stays
away, a line when it is back, instead of a line for every request meanwhile.

The web tier follows its database with one, the shim the web service. Each
process keeps its own account, so each logs its own lines.

An outage ends when a request is served again, but it is not over while
requests keep failing: when only some requests fail (writes on a full disk,
while reads are served), a request served within `settle_s` of the last
failure does not end it. So a part that serves some requests and fails
others is one outage, summarised every `summary_every_s`, not a "back" and an
"unavailable" line for each pair of requests. Only the first request served
in an outage can end it at once; if failures resume within `settle_s`, the
outage goes on, said once ("unavailable again"), and is back only once no
request has failed for `settle_s`.
"""

import logging
import threading
import time
from collections.abc import Callable

SUMMARY_EVERY_S = 30.0
SETTLE_S = 5.0


class Outage:
    def __init__(
        self,
        part: str,
        log: logging.Logger,
        summary_every_s: float = SUMMARY_EVERY_S,
        settle_s: float = SETTLE_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._part = part
        self._log = log
        self._summary_every_s = summary_every_s
        self._settle_s = settle_s
        self._clock = clock
        self._lock = threading.Lock()
        self._since: float | None = None  # when the first request failed; None while up
        self._last_summary = 0.0
        self._failed = 0  # requests failed since
        self._served = 0  # requests served since, while requests kept failing
        self._last_failure = 0.0
        self._ended_at: float | None = None  # when it was last said to be back
        self._ended_since = 0.0  # and when that outage had begun
        self._flapping = False  # failures resumed soon after it was said to be back

    def request_failed(self, cause: str) -> None:
        """A request failed, wholly or partly, for want of the part."""
        with self._lock:
            now = self._clock()
            self._last_failure = now
            if self._since is None:
                if self._ended_at is None or now - self._ended_at >= self._settle_s:
                    self._begin(now, cause)
                    return
                self._since, self._flapping = self._ended_since, True  # it was not over
                self._log.error(
                    "%s unavailable again %.1f s after it was back: %s; requests fail until "
                    "none has failed for %g s",
                    self._part,
                    now - self._ended_at,
                    cause,
                    self._settle_s,
                )
            self._failed += 1
            if now - self._last_summary >= self._summary_every_s:
                self._last_summary = now
                served = f", {self._served} served" if self._served else ""
                self._log.error(
                    "%s still unavailable after %.0f s: %d requests failed so far%s (%s)",
                    self._part,
                    now - self._since,
                    self._failed,
                    served,
                    cause,
                )

    def request_served(self) -> None:
        """A request was served, nothing of it failing for want of the part: if it was
        away, it may be back. (Items refused before the part is asked, an order for 0
        shares say, count too.)"""
        if self._since is None:  # the usual case, without taking the lock
            return
        with self._lock:
            if self._since is None:
                return
            now = self._clock()
            if self._flapping and now - self._last_failure < self._settle_s:
                self._served += 1
                return
            self._log.warning(
                "%s back after %.0f s; %d requests failed meanwhile",
                self._part,
                now - self._since,
                self._failed,
            )
            self._ended_at, self._ended_since = now, self._since
            self._since = None
            self._flapping = False

    def _begin(self, now: float, cause: str) -> None:
        self._since = self._last_summary = now
        self._failed, self._served = 1, 0
        self._log.error("%s unavailable: %s; requests fail until it is back", self._part, cause)
