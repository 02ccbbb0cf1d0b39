"""One stream's place in the feed: the events it is owed, bounded, and how they are written.

The feed pushes from its own thread (a greenlet under the gevent worker); the
stream's connection takes what is queued, all of it in one write. Trades queue
in the order they happened; a book replaces the one not yet written (the
latest state wins) and goes after them, so only the trades pile up. A client
that does not read is never waited for: once more than `limit` bytes of events
wait for it, the stream is dropped.
"""

import threading
import time
from collections.abc import Callable, Iterator

from app.protocol.events import HEARTBEAT


class Subscription:
    def __init__(
        self, symbol: str, depth: int, last_seen: int | None, limit: int, heartbeat_s: float
    ):
        self.symbol = symbol
        self.depth = depth
        self.last_seen = last_seen  # Last-Event-ID: the trades after it are owed first
        self.after = 0  # the last trade queued for it, once started
        self.ended: str | None = None  # why: behind, gone, left, shutdown, closed
        self.hang_up: Callable[[], None] | None = None  # closes its connection at once
        self._limit = limit
        self._heartbeat_s = heartbeat_s
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._queued: list[bytes] = []
        self._queued_bytes = 0
        self._book = b""

    def push(self, events: bytes, book: bytes = b"") -> bool:
        """Queue `events`, and make `book` (if any) the next book written.

        False when the events queued pass the limit: the stream is dropped,
        and what it was owed is let go.
        """
        with self._lock:
            if self.ended:
                return False
            if events:
                self._queued.append(events)
                self._queued_bytes += len(events)
            if book:
                self._book = book
            behind = self._queued_bytes > self._limit
        if behind:
            self.end("behind")
            return False
        if events or book:
            self._ready.set()
        return True

    def end(self, reason: str) -> None:
        """End the stream; a stream dropped for falling behind has its connection closed too,
        rather than left waiting for a client that does not read."""
        with self._lock:
            if self.ended:
                return
            self.ended = reason
            self._queued.clear()
            self._book = b""
        self._ready.set()
        if reason == "behind" and self.hang_up is not None:
            self.hang_up()

    def events(self) -> Iterator[bytes]:
        """What to write, as it comes: all that is queued in one piece, a heartbeat comment
        after `heartbeat_s` without one; it stops when the stream ends."""
        written = time.monotonic()
        while True:
            woken = self._ready.wait(max(0.0, written + self._heartbeat_s - time.monotonic()))
            with self._lock:
                if self.ended:
                    return
                self._ready.clear()
                chunk = b"".join(self._queued) + self._book
                self._queued.clear()
                self._queued_bytes = 0
                self._book = b""
            if chunk or not woken:
                written = time.monotonic()
                yield chunk or HEARTBEAT
