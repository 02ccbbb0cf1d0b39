"""Where a request's time goes, stage by stage, from timestamps taken along its path.

A request served by a slot of the worker (app/web/worker.py) is timed from
its first byte: `arriving` until it is whole, `queued` until a slot is free,
then, while the application runs it, `locking` (round trips that began by
waiting for a symbol's lock, the book read after it included), `database`
(its other round trips), `application` (the rest: parsing, matching in
Python, rendering, and waiting for the worker's loop), and `replying` (the
reply written to the client). Each is a histogram of `/metrics`
(`exchange_request_stage_seconds{stage}`), so that a tail can be traced to
the stage that makes it, in production as in `make bench`.
"""

import contextlib
import time
from collections.abc import Iterator

from app.storage.session import timing

STAGES = ("arriving", "queued", "locking", "database", "application", "replying")


@contextlib.contextmanager
def timed(connection) -> Iterator[None]:
    """Time the application's run of the request arrived whole on `connection` (a slot held);
    its stages wait on the connection until its reply is written (`record`)."""
    started = time.monotonic()
    with timing() as spent:
        try:
            yield
        finally:
            ran = time.monotonic() - started
            connection.stages = {
                "arriving": connection.arrived_at - connection.first_byte_at,
                "queued": started - connection.arrived_at,
                "locking": spent.locking,
                "database": spent.database,
                "application": max(ran - spent.locking - spent.database, 0.0),
            }


def record(histogram, seconds: dict[str, float], replying: float) -> None:
    """Observe each stage in `histogram` (metrics.STAGE_SECONDS), once the reply is written."""
    for stage, value in {**seconds, "replying": replying}.items():
        histogram.labels(stage).observe(value)
