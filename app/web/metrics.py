"""Prometheus metrics of the web tier, and `GET /metrics`.

Under gunicorn every worker is a process of its own: `PROMETHEUS_MULTIPROC_DIR`
(set by gunicorn.conf.py before any worker starts) makes each one write its
values to files there, and a scrape of any worker adds up all of them.
Without it (an app built in-process, as the tests do) the values live in
memory.

Everything is counted from what the web tier sees: the request's kind, its
HTTP outcome, the result of each item, and the exchange's own per-process
retry count, so the transaction module stays free of metrics code.
"""

import os
import threading

import falcon
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from sqlalchemy import Engine, event

from app.exchange.results import Opened, Result
from app.exchange.transactions import Exchange
from app.market.feed import Meter

REQUESTS = Counter(
    "exchange_requests",
    "Request documents answered, by kind (create, transactions, unparsed) and outcome.",
    ["kind", "outcome"],
)
REQUEST_SECONDS = Histogram(
    "exchange_request_duration_seconds",
    "Time to answer a request document, from its first byte read to its reply.",
    ["kind"],
)
STAGE_SECONDS = Histogram(
    "exchange_request_stage_seconds",
    "Where the time of requests served by a worker's slots went, by stage: arriving, queued, "
    "locking, database, application, replying (app/web/stages.py).",
    ["stage"],
    buckets=(
        *(0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.04),
        *(0.05, 0.06, 0.08, 0.1, 0.125, 0.15, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0),
    ),
)
RESULTS = Counter(
    "exchange_results",
    "Replies to request items: created, opened (an order placed), status, canceled "
    "(an order canceled), failed.",
    ["result"],
)
RETRIES = Counter(
    "exchange_transaction_retries",
    "Transactions run again after a deadlock or serialization failure.",
)
CONNECTIONS_CHECKED_OUT = Gauge(
    "exchange_db_connections_checked_out",
    "Database connections in use by requests, over all live workers.",
    multiprocess_mode="livesum",
)
_COUNTED = "counted as checked out"  # in a connection record's info while it is
POOL_SIZE = Gauge(
    "exchange_db_pool_size",
    "Database connections the live workers may hold at most.",
    multiprocess_mode="livesum",
)

OPEN_CONNECTIONS = Gauge(
    "exchange_http_connections",
    "HTTP client connections open, over all live workers.",
    multiprocess_mode="livesum",
)
ARRIVING_REQUESTS = Gauge(
    "exchange_http_requests_arriving",
    "HTTP requests begun but not yet in whole: in transit, or slow clients.",
    multiprocess_mode="livesum",
)
REFUSED_CONNECTIONS = Counter(
    "exchange_http_refused_connections",
    "HTTP connections refused with 503: too_many_connections, too_many_from_client.",
    ["reason"],
)
TIMEOUTS = Counter(
    "exchange_http_timeouts",
    "HTTP clients cut off for not sending a request (408) or not taking a reply in time.",
    ["stage"],
)

AUTH_FAILURES = Counter(
    "exchange_auth_failures",
    "Requests refused with 401 for want of a valid proof of a key, by cause: missing, "
    "malformed, stale, bad_signature (an unknown key's too), unknown_key, revoked, replayed.",
    ["cause"],
)
RATE_LIMITED = Counter(
    "exchange_rate_limited",
    "Requests refused with 429: their key sent more than EXCHANGE_RATE_LIMIT allows.",
)

STREAMS = Gauge(
    "exchange_streams",
    "Market-data streams open (GET /symbols/SYM/stream), over all live workers.",
    multiprocess_mode="livesum",
)
STREAMS_REFUSED = Counter(
    "exchange_streams_refused",
    "Streams refused with 503: their worker held EXCHANGE_MAX_STREAMS already.",
)
STREAMS_DROPPED = Counter(
    "exchange_streams_dropped",
    "Streams dropped because their client did not read: more than "
    "EXCHANGE_STREAM_BUFFER_BYTES waited for it.",
)
MARKET_POLLS = Histogram(
    "exchange_market_poll_duration_seconds",
    "The market feeds' polls of the database: one statement per worker and interval, "
    "however many streams there are.",
)

EXECUTIONS = Counter(
    "exchange_executions",
    "Executions: an incoming order matched with a resting one, at the resting order's limit.",
)
TRADED_SHARES = Counter("exchange_traded_shares", "Shares that changed hands in executions.")


def record_request(kind: str, outcome: str, seconds: float, results: list[Result]) -> None:
    REQUESTS.labels(kind, outcome).inc()
    REQUEST_SECONDS.labels(kind).observe(seconds)
    for result in results:
        RESULTS.labels(type(result).__name__.lower()).inc()
        if isinstance(result, Opened) and result.executions:
            EXECUTIONS.inc(result.executions)
            TRADED_SHARES.inc(float(result.traded_shares))


class ExchangeCounters:
    """Exports the increments of the exchange's plain retry count; one per process."""

    def __init__(self, exchange: Exchange):
        self._exchange = exchange
        self._lock = threading.Lock()  # the worker's threads all export
        self._retries_seen = 0

    def export(self) -> None:
        with self._lock:
            retries = self._exchange.retries
            if retries != self._retries_seen:  # a write to the metrics file costs, even of 0
                RETRIES.inc(retries - self._retries_seen)
                self._retries_seen = retries


def watch_pool(engine: Engine, size: int) -> None:
    """Follow the engine's connection pool: its capacity, and connections checked out.

    A connection is counted out once it was handed to a request, and back only
    if it was counted: when the database is down, the pool also reports the
    return of connections that never came to be, and the gauge went negative.
    """
    POOL_SIZE.set(size)
    event.listen(engine, "checkout", _checked_out)
    event.listen(engine, "checkin", _checked_in)


def _checked_out(dbapi_connection, connection_record, proxy) -> None:
    connection_record.record_info[_COUNTED] = True
    CONNECTIONS_CHECKED_OUT.inc()


def _checked_in(dbapi_connection, connection_record) -> None:
    if connection_record is not None and connection_record.record_info.pop(_COUNTED, False):
        CONNECTIONS_CHECKED_OUT.dec()


class FeedMeter(Meter):
    """The market feed's polls and drops, counted."""

    def polled(self, seconds: float) -> None:
        MARKET_POLLS.observe(seconds)

    def dropped(self) -> None:
        STREAMS_DROPPED.inc()


class MetricsResource:
    """`GET /metrics`: every worker's metrics, in Prometheus' text format."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = CONTENT_TYPE_LATEST
        resp.data = generate_latest(_registry())


def _registry() -> CollectorRegistry:
    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry
