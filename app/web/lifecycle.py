"""Counts of the processes of the service coming and going, for `/metrics`.

gunicorn's master counts its starts and its workers' exits; `make run`'s
launcher counts the parts it restarts. Each writes to the metrics directory
(app/web/metrics_directory.py), which under `make run` outlives the master,
so that a restart shows in the counts. Import this only once
`PROMETHEUS_MULTIPROC_DIR` is set: prometheus_client reads it on import.
"""

from prometheus_client import Counter

MASTER_STARTS = Counter(
    "exchange_master_starts",
    "Starts of gunicorn's master; under make run, more than one means it was restarted.",
)
WORKER_EXITS = Counter(
    "exchange_worker_exits",
    "gunicorn workers that exited (killed, crashed, or stopped); while serving, each is replaced.",
)
RESTARTS = Counter(
    "exchange_restarts",
    "Parts make run started again after they died: PostgreSQL, gunicorn, shim.",
    ["part"],
)
