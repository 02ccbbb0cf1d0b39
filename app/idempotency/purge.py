"""Forgetting idempotency keys once kept long enough (SPEC §9: at least 24 hours).

Every gunicorn worker purges now and then, in batches of its own transactions
that skip rows another transaction holds, so a purge never waits for trading
and trading never waits for more than one small batch. Workers purging at the
same time share the work.
"""

import logging
import random
import threading
import time

from sqlalchemy.exc import DBAPIError

from app.exchange.transactions import Exchange

log = logging.getLogger(__name__)

BATCH = 1000  # requests deleted per transaction
EVERY_S = 60.0  # mean pause between two purges of a worker


def purge_expired(exchange: Exchange, keep_seconds: float, batch: int = BATCH) -> int:
    """Delete every request older than `keep_seconds`, a batch at a time; how many."""
    total = 0
    while (deleted := exchange.purge_requests(keep_seconds, batch)) > 0:
        total += deleted
        if deleted < batch:
            break
    return total


def keep_purging(exchange: Exchange, keep_seconds: float, every: float = EVERY_S) -> None:
    """Purge at random intervals around `every` seconds, in a daemon thread (a greenlet
    under gevent), for as long as the process lives."""

    def purge_now_and_then() -> None:
        while True:
            time.sleep(every * random.uniform(0.5, 1.5))
            try:
                deleted = purge_expired(exchange, keep_seconds)
            except DBAPIError as error:  # an outage: the requests report it
                log.debug("purging idempotency keys failed: %s", error)
                continue
            if deleted:
                log.info("forgot %d idempotency keys older than %g s", deleted, keep_seconds)

    threading.Thread(target=purge_now_and_then, name="idempotency-purge", daemon=True).start()
