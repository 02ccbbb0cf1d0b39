"""gunicorn settings for the exchange: `gunicorn -c gunicorn.conf.py wsgi:app`.

Every value can be overridden from the environment; the README lists them.
"""

import os
import socket
from pathlib import Path

from gunicorn import glogging

from app.config import request_slots, web_workers
from app.web import metrics_directory

# -- server socket: one listening socket per worker (SO_REUSEPORT), so the
# kernel spreads connections over the workers. With one shared socket, the
# worker that wakes first takes a burst of keep-alive connections (the shim's
# pool, a load generator's clients) and serves them 4 at a time while another
# idles: p99 at 32 clients 60 -> 52 ms over HTTP, 73 -> 57 ms through the shim
# (docs/scalability.md). The cost: connections waiting in a worker's backlog
# when it dies are reset.
bind = os.environ.get("EXCHANGE_BIND", "127.0.0.1:8000")
backlog = 2048
reuse_port = True

# -- workers: a process per core; in each, a greenlet per connection, and
# `threads` requests run at once, in arrival order, once they have arrived
# whole (app/web/worker.py: slow clients cost a greenlet, not a slot).
# More processes than cores measured no faster (docs/scalability.md).
workers = web_workers()
worker_class = os.environ.get("EXCHANGE_WORKER_CLASS", "app.web.worker.ExchangeWorker")
threads = request_slots()
keepalive = int(os.environ.get("EXCHANGE_IDLE_TIMEOUT", 75))
# Room past EXCHANGE_MAX_CONNECTIONS to accept, answer 503 and close; beyond
# it, connections wait in the kernel's backlog.
worker_connections = int(os.environ.get("EXCHANGE_MAX_CONNECTIONS", 1000)) + 64
timeout = 30
graceful_timeout = 30
# No preloading: each worker imports wsgi.py after the fork, so each builds its
# own engine and connection pool, one connection per request slot (GET
# requests have EXCHANGE_READ_CONCURRENCY slots of their own).
preload_app = False
_read_slots = int(os.environ.get("EXCHANGE_READ_CONCURRENCY", 2))
os.environ.setdefault("EXCHANGE_DB_POOL_SIZE", str(threads + _read_slots))

# -- a request's line and headers: gunicorn's limits, refused with 4xx beyond.
limit_request_line = 4094
limit_request_fields = 100
limit_request_field_size = 8190

# Several servers may run side by side (tests, benchmarks); none needs the
# control socket, which would otherwise be shared in the home directory.
control_socket_disable = True

# -- logging: the app's and gunicorn's lines to stderr; access lines only on
# request, each the bare line gunicorn formats, to stdout (`-`) or a file.
loglevel = os.environ.get("EXCHANGE_LOG_LEVEL", "info")
errorlog = "-"
accesslog = os.environ.get("EXCHANGE_ACCESS_LOG") or None


class Logger(glogging.Logger):
    """gunicorn's logger, building an access line only when one was asked for.

    With `logconfig_dict` set, gunicorn would build every request's access
    line for a logger that then drops it: measurable on every request.
    """

    @property
    def access_log_enabled(self) -> bool:
        return bool(self.cfg.accesslog)


logger_class = Logger
_access = (
    {"class": "logging.StreamHandler", "stream": "ext://sys.stdout"}
    if accesslog == "-"
    else {"class": "logging.FileHandler", "filename": accesslog}
)
logconfig_dict = {
    "root": {"level": loglevel.upper(), "handlers": ["error_console"]},
    "loggers": {
        "gunicorn.error": {
            "level": loglevel.upper(),
            "propagate": False,
            "handlers": ["error_console"],
        },
        "gunicorn.access": {
            "level": "INFO",
            "propagate": False,
            "handlers": ["access"] if accesslog else [],
        },
    },
    "handlers": {
        **glogging.CONFIG_DEFAULTS["handlers"],
        **({"access": {**_access, "formatter": "access"}} if accesslog else {}),
    },
    "formatters": {**glogging.CONFIG_DEFAULTS["formatters"], "access": {"format": "%(message)s"}},
}


# -- metrics: each worker writes its values to files here, any worker serves the sum.
# Set before a worker imports prometheus_client, which reads it once. Unset, a
# temporary directory of this server's own, removed when the master exits
# (app/web/metrics_directory.py); `make run` sets one for the whole run.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_directory.own_directory()


def on_starting(server):
    """Wait for the database, create the schema once, before any worker exists."""
    from app.config import Config
    from app.storage.engine import DatabaseUnreachable, database_engine, wait_for_database
    from app.storage.schema import create_schema
    from app.web.draining import drain_before_stopping
    from app.web.worker import ExchangeWorker, hold_stop_signals_across_forks

    if issubclass(server.worker_class, ExchangeWorker):
        hold_stop_signals_across_forks()
    _refuse_an_address_in_use(server)
    metrics_directory.prepare(Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]))
    from app.web.lifecycle import MASTER_STARTS  # its file goes into the prepared directory

    MASTER_STARTS.inc()
    try:
        config = Config.from_env()
    except ValueError as error:  # a setting that no restart can mend
        server.log.error("cannot start: %s", error)
        raise SystemExit(1) from None
    if config.drain_seconds > 0:
        drain_before_stopping(server, config.drain_seconds)
    engine = database_engine(config.database_url, pool_size=1)
    try:
        wait_for_database(engine, config.db_wait_seconds, server.log)
        create_schema(engine)
    except DatabaseUnreachable as error:
        server.log.error("cannot start: %s", error)
        raise SystemExit(1) from None
    finally:
        engine.dispose()
    server.log.info("schema ready")


def _refuse_an_address_in_use(server):
    """Workers bind with SO_REUSEPORT, which would let a second server share the port
    silently (a stale one still serving old code, say): the master checks first."""
    for address in server.cfg.address:
        if not isinstance(address, tuple):  # a unix socket
            continue
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no user
            try:
                probe.bind(address)
            except OSError as error:
                server.log.error("cannot start: %s:%d is in use: %s", *address[:2], error.strerror)
                raise SystemExit(1) from None


def when_ready(server):
    """gunicorn's own "Listening at" line is empty when each worker binds its socket."""
    from app.auth.exposure import exposure_warning
    from app.config import switch

    addresses = ", ".join(
        f"http://{a[0]}:{a[1]}" if isinstance(a, tuple) else str(a) for a in server.cfg.address
    )
    server.log.info("serving %s: a socket per worker (SO_REUSEPORT)", addresses)
    for address in server.cfg.address:
        if isinstance(address, tuple):
            warning = exposure_warning(
                "the service", address[0], switch(os.environ, "EXCHANGE_AUTH")
            )
            if warning:
                server.log.warning("%s", warning)


def post_worker_init(worker):
    """Each worker forgets old idempotency keys now and then, on a connection of its own."""
    from app.config import Config
    from app.exchange.transactions import Exchange
    from app.idempotency.purge import keep_purging
    from app.storage.engine import exchange_engine

    config = Config.from_env()
    engine = exchange_engine(config.database_url, 1, config.deadline)
    keep_purging(Exchange(engine), config.idempotency_keep_hours * 3600)


def child_exit(server, worker):
    """A dead worker's gauges no longer count; its counters do, and its exit is counted."""
    from prometheus_client import multiprocess

    from app.web.lifecycle import WORKER_EXITS

    multiprocess.mark_process_dead(worker.pid)
    WORKER_EXITS.inc()
