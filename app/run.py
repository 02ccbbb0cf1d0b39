"""`make run`: the whole exchange in the foreground until Ctrl-C.

Starts the local PostgreSQL cluster unless `DATABASE_URL` names a server,
then gunicorn (which creates the schema before forking its workers) and the
legacy TCP shim. Ctrl-C or SIGTERM stops the services first, so requests in
flight finish against a live database, then the local cluster.
"""

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping

from app.storage import cluster

log = logging.getLogger("app.run")

WEB_COMMAND = [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "wsgi:app"]
SHIM_COMMAND = [sys.executable, "-m", "app.shim"]
STOP_TIMEOUT = 35  # a little longer than gunicorn's graceful_timeout


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s [run] %(message)s")
    local = cluster.Cluster.from_env() if not os.environ.get("DATABASE_URL") else None
    environment = dict(os.environ)
    environment.setdefault("EXCHANGE_SHIM_UPSTREAM", web_url(environment))
    if local is not None:
        local.ensure_running()
        environment["DATABASE_URL"] = local.url()
    try:
        return _serve(environment)
    finally:
        if local is not None:
            local.stop()


def web_url(environment: Mapping[str, str]) -> str:
    """Where the shim and the client reach the web tier: the address gunicorn binds,
    on loopback if wildcard."""
    host, _, port = environment.get("EXCHANGE_BIND", "127.0.0.1:8000").rpartition(":")
    if host in ("", "0.0.0.0", "[::]"):
        host = "127.0.0.1"
    return f"http://{host}:{port}/"


def _serve(environment: dict[str, str]) -> int:
    stop = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda received, frame: stop.append(received))
    # Own sessions: a terminal's Ctrl-C reaches only this process, which then
    # stops the children in order instead of all of them at once.
    children = [
        subprocess.Popen(command, env=environment, start_new_session=True)
        for command in (WEB_COMMAND, SHIM_COMMAND)
    ]
    log.info("serving; press Ctrl-C to stop")
    while not stop and all(child.poll() is None for child in children):
        time.sleep(0.2)
    exited = [child for child in children if child.poll() is not None]
    for child in exited:
        log.error("%s exited with status %s", child.args[2], child.returncode)
    for child in children:
        if child.poll() is None:
            child.terminate()
    for child in children:
        try:
            child.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            child.kill()
    log.info("stopped")
    return 1 if exited and not stop else 0


if __name__ == "__main__":
    sys.exit(main())
