"""Every wait for PostgreSQL bounded by the request's deadline, even when the server hangs.

PostgreSQL ends the waits it can see by itself: a statement, a lock or an
idle transaction past its timeout (`server_timeouts`). A server that is
stopped, or a network that drops packets, answers nothing, and only the
client can stop waiting. Under gunicorn's gevent worker psycopg2 waits for
its socket through a callback (`wait_cooperatively`): other greenlets run
meanwhile, and the wait ends when the deadline of the request being served
passes (app/deadline.py). psycopg2 then closes the connection, whose state
is unknown: the request's transaction, if COMMIT was not yet sent, is rolled
back by the server.
"""

import psycopg2
from gevent.socket import wait_read, wait_write
from psycopg2 import extensions
from sqlalchemy.exc import DBAPIError

from app import deadline

QUERY_CANCELED = "57014"  # statement_timeout
LOCK_NOT_AVAILABLE = "55P03"  # lock_timeout
IDLE_IN_TRANSACTION_TIMEOUT = "25P03"
TIMEOUTS = {QUERY_CANCELED, LOCK_NOT_AVAILABLE, IDLE_IN_TRANSACTION_TIMEOUT}


class DeadlinePassed(psycopg2.OperationalError):
    """The request's deadline passed while it waited for the database.

    A psycopg2 error, so that it reaches the exchange as every other database
    error does: wrapped by SQLAlchemy, its connection discarded.
    """


def wait_cooperatively(connection) -> None:
    """psycopg2's wait callback under gevent, as psycogreen's, but ending at the deadline."""
    passed = DeadlinePassed("the request's deadline passed while waiting for the database")
    while (state := connection.poll()) != extensions.POLL_OK:
        left = deadline.remaining()
        if left is not None and left <= 0:
            raise passed
        if state == extensions.POLL_READ:
            wait_read(connection.fileno(), timeout=left, timeout_exc=passed)
        elif state == extensions.POLL_WRITE:
            wait_write(connection.fileno(), timeout=left, timeout_exc=passed)
        else:
            raise psycopg2.OperationalError(f"bad result from poll: {state!r}")


def install() -> None:
    """Make every psycopg2 connection of this process wait cooperatively (call after gevent's
    patching, in the worker)."""
    extensions.set_wait_callback(wait_cooperatively)


def timed_out(error: DBAPIError) -> bool:
    """Whether the database failed a request because a wait ran out of time, its own or ours."""
    return isinstance(error.orig, DeadlinePassed) or getattr(error.orig, "pgcode", None) in TIMEOUTS


def server_timeouts(seconds: float) -> str:
    """libpq `options` bounding a statement, a lock wait and an idle transaction on the server.

    The idle transaction one frees the locks of a client that stopped in the
    middle of a transaction (a frozen worker), which no other timeout would.
    """
    milliseconds = max(1, round(seconds * 1000))
    return " ".join(
        f"-c {setting}={milliseconds}"
        for setting in ("statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout")
    )
