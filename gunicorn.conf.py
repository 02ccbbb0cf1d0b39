"""gunicorn settings for the exchange: `gunicorn -c gunicorn.conf.py wsgi:app`.

Every value can be overridden from the environment; the README lists them.
"""

import multiprocessing
import os

# -- server socket
bind = os.environ.get("EXCHANGE_BIND", "127.0.0.1:8000")
backlog = 2048

# -- workers: processes for the cores, threads to overlap database round trips.
# gthread keeps client connections alive (the sync worker closes every one).
workers = int(os.environ.get("EXCHANGE_WORKERS", multiprocessing.cpu_count() * 2))
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

# -- logging: one handler per line of output; access lines only on request
loglevel = os.environ.get("EXCHANGE_LOG_LEVEL", "info")
errorlog = "-"
accesslog = os.environ.get("EXCHANGE_ACCESS_LOG") or None
logconfig_dict = {
    "root": {"level": loglevel.upper(), "handlers": ["error_console"]},
    "loggers": {
        "gunicorn.error": {
            "level": loglevel.upper(),
            "propagate": False,
            "handlers": ["error_console"],
        },
        "gunicorn.access": {
            "level": "INFO" if accesslog else "WARNING",
            "propagate": False,
            "handlers": ["console"],
        },
    },
}


def on_starting(server):
    """Create the schema once, in the master, before any worker exists."""
    from app.config import Config
    from app.storage.engine import database_engine
    from app.storage.schema import create_schema

    engine = database_engine(Config.from_env().database_url, pool_size=1)
    try:
        create_schema(engine)
    finally:
        engine.dispose()
    server.log.info("schema ready")
