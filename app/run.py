"""`make run`: the whole exchange in the foreground until Ctrl-C.

Starts the local PostgreSQL cluster unless `DATABASE_URL` names a server,
then gunicorn (which creates the schema before forking its workers) and the
legacy TCP shim, and keeps them running (app/local/supervisor.py): a part that
dies is restarted while the others serve. Ctrl-C or SIGTERM stops the shim,
then gunicorn, so requests in flight finish against a live database, then
the local cluster.
"""

import http.client
import logging
import os
import sys
import urllib.request
from collections.abc import Callable

from app.auth import secret
from app.client.transport import TransportError, tcp_sender
from app.config import Config, switch
from app.endpoints import LIVENESS, reachable, web_url
from app.local import cluster
from app.local.supervisor import MAX_DELAY, ChildProcess, Supervisor, database_parts
from app.shim.config import ShimConfig
from app.web import metrics_directory

log = logging.getLogger("app.run")

WEB_COMMAND = [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "wsgi:app"]
SHIM_COMMAND = [sys.executable, "-m", "app.shim"]
STOP_TIMEOUT = 35  # a little longer than gunicorn's graceful_timeout
PROBE_TIMEOUT = 0.5  # seconds a restarted part has to answer before it is asked again
EMPTY_REQUEST = b"<create/>"


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s [run] %(message)s")
    environment = dict(os.environ)
    environment.setdefault("EXCHANGE_SHIM_UPSTREAM", web_url(environment))
    try:
        shim = ShimConfig.from_env(environment)
        check_settings(environment)
    except ValueError as error:
        log.error("cannot start: %s", error)
        return 1
    parts = database_parts(environment)
    shim_address = (reachable(shim.host), shim.port)
    parts += [
        ChildProcess(
            "gunicorn", WEB_COMMAND, environment, web_answers(web_url(environment)), STOP_TIMEOUT
        ),
        ChildProcess("shim", SHIM_COMMAND, environment, shim_answers(shim_address), STOP_TIMEOUT),
    ]
    first_delay = float(environment.get("EXCHANGE_RESTART_DELAY") or 0.5)
    max_delay = float(environment.get("EXCHANGE_RESTART_MAX_DELAY") or MAX_DELAY)
    supervisor = Supervisor(
        parts, first_delay, max_delay=max_delay, restarted=restarts_counted(environment)
    )
    try:
        return supervisor.run()
    except cluster.ClusterError as error:  # starting or stopping the local PostgreSQL
        log.error("%s", error)
        return 1


def check_settings(environment: dict[str, str]) -> None:
    """Every setting of the parts checked before anything starts (ValueError says which is
    wrong). With authentication on and no master secret set, the local cluster's (made on
    first use) is named for the parts, which will see the cluster's URL as DATABASE_URL."""
    if switch(environment, "EXCHANGE_AUTH") and not secret.configured(environment):
        if not environment.get("DATABASE_URL"):
            environment["EXCHANGE_AUTH_SECRET_FILE"] = str(secret.local_secret(environment))
    Config.from_env(environment)


def restarts_counted(environment: dict[str, str]) -> Callable[[str], None]:
    """Count restarts where the web tier's `/metrics` shows them: in a metrics directory
    owned by the launcher for the whole run, so that it outlives gunicorn's master."""
    if not environment.get("PROMETHEUS_MULTIPROC_DIR"):
        environment["PROMETHEUS_MULTIPROC_DIR"] = metrics_directory.own_directory()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = environment["PROMETHEUS_MULTIPROC_DIR"]
    from app.web.lifecycle import RESTARTS  # once the directory is set: it is read on import

    return lambda part: RESTARTS.labels(part).inc()


def web_answers(url: str) -> Callable[[], bool]:
    """Whether gunicorn serves: `/livez` answers 200 (it asks the database nothing)."""

    def answers() -> bool:
        try:
            with urllib.request.urlopen(url + LIVENESS[1:], timeout=PROBE_TIMEOUT) as response:
                return response.status == 200
        except (OSError, http.client.HTTPException):  # refused, cut, timed out, not 200
            return False

    return answers


def shim_answers(address: tuple[str, int]) -> Callable[[], bool]:
    """Whether the shim serves: it replies to an empty request, which changes nothing.
    A connection accepted is not enough: the port may be another program's."""
    send = tcp_sender(address, PROBE_TIMEOUT)

    def answers() -> bool:
        try:
            return bool(send(EMPTY_REQUEST))
        except (OSError, TransportError):
            return False

    return answers


if __name__ == "__main__":
    sys.exit(main())
