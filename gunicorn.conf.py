"""gunicorn settings for the exchange: `gunicorn -c gunicorn.conf.py wsgi:app`.

Every value can be overridden from the environment; the README lists them.
"""

import atexit
import multiprocessing
import os
import shutil
import tempfile
from pathlib import Path

from gunicorn import glogging

# -- server socket
bind = os.environ.get("EXCHANGE_BIND", "127.0.0.1:8000")
backlog = 2048

# -- workers: a process per core, threads to overlap database round trips.
# More processes than cores measured slower (docs/scalability.md): they hold
# row locks while descheduled. gthread keeps client connections alive (the
# sync worker closes every one).
workers = int(os.environ.get("EXCHANGE_WORKERS", multiprocessing.cpu_count()))
worker_class = os.environ.get("EXCHANGE_WORKER_CLASS", "gthread")
threads = int(os.environ.get("EXCHANGE_THREADS", 4))
keepalive = 75
timeout = 30
graceful_timeout = 30
# No preloading: each worker imports wsgi.py after the fork, so each builds its
# own engine and connection pool, sized to its threads.
preload_app = False
os.environ.setdefault("EXCHANGE_DB_POOL_SIZE", str(threads))

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
# temporary directory of this server's own, removed when the master exits,
# whichever way it does (workers exit too, and must leave it alone).
def _remove_metrics_dir(master: int, directory: str) -> None:
    if os.getpid() == master:
        shutil.rmtree(directory, ignore_errors=True)


if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="exchange-metrics-")
    atexit.register(_remove_metrics_dir, os.getpid(), os.environ["PROMETHEUS_MULTIPROC_DIR"])


def on_starting(server):
    """Wait for the database, create the schema once, before any worker exists."""
    from app.config import Config
    from app.storage.engine import DatabaseUnreachable, database_engine, wait_for_database
    from app.storage.schema import create_schema

    _empty_directory(Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]))
    config = Config.from_env()
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


def child_exit(server, worker):
    """A dead worker's gauges no longer count; its counters do."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def _empty_directory(directory: Path) -> None:
    """Values left by an earlier run would be added to this one's."""
    directory.mkdir(parents=True, exist_ok=True)
    for entry in directory.iterdir():
        entry.unlink()
