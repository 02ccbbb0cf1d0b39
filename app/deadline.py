"""The time a request has left: set where it arrives, read wherever it waits.

A request is answered within a bound even when the database hangs. The web
worker gives each request a deadline once it has arrived whole (the wait for
a slot counts); every wait for the database ends by it (app/storage/waits.py),
and the exchange starts no transaction once it has passed. Each greenlet, and
each thread, has its own deadline: a context variable.
"""

import contextlib
import contextvars
import time
from collections.abc import Iterator

_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("deadline", default=None)


@contextlib.contextmanager
def within(seconds: float) -> Iterator[None]:
    """Everything inside must be done within `seconds`: a deadline of its own."""
    token = _DEADLINE.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def remaining() -> float | None:
    """Seconds left, negative once passed; None where no deadline is set."""
    deadline = _DEADLINE.get()
    return None if deadline is None else deadline - time.monotonic()


def passed() -> bool:
    left = remaining()
    return left is not None and left <= 0
