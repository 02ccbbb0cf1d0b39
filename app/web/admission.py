"""A worker's request slots, taken first come, first served.

gevent's semaphore lets a greenlet that reaches `acquire` just after a slot
is released take it before the greenlet that has waited longest is woken:
under load, requests that have just arrived overtake those queued for tens
of milliseconds, and the queue's tail grows. Here a released slot is handed
straight to the longest waiter, so requests run in the order they arrived.
"""

from collections import deque

from gevent.event import Event


class Slots:
    """`count` slots; waiters are served in arrival order (single-threaded: one gevent hub)."""

    def __init__(self, count: int):
        self._free = count
        self._waiting: deque[Event] = deque()

    def acquire(self, timeout: float) -> bool:
        """Take a slot within `timeout` seconds; False when none was handed over in time."""
        if self._free and not self._waiting:
            self._free -= 1
            return True
        turn = Event()
        self._waiting.append(turn)
        try:
            handed_over = turn.wait(timeout)
        except BaseException:
            self._give_up(turn)
            raise
        if not handed_over:
            self._give_up(turn)
        return handed_over

    def release(self) -> None:
        if self._waiting:
            self._waiting.popleft().set()
        else:
            self._free += 1

    def _give_up(self, turn: Event) -> None:
        """A waiter leaves: out of the queue, or, if its slot came meanwhile, it passes it on."""
        if turn.is_set():
            self.release()
        else:
            self._waiting.remove(turn)
