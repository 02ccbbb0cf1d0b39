"""`make cluster`: several instances of the exchange behind HAProxy, in the foreground until Ctrl-C.

    make cluster                  # 3 instances; HTTP on EXCHANGE_BIND, TCP on EXCHANGE_SHIM_PORT
    make cluster-restart          # from another terminal: a rolling restart (SIGHUP)

Each instance stands in for an app host: a gunicorn and a shim of its own on
a loopback address of its own (127.0.0.2, 127.0.0.3, ..., EXCHANGE_HOSTS of
them), on the front's ports, sharing one PostgreSQL (the local cluster, or
DATABASE_URL). HAProxy (app/local/balancer.py) listens in front, on
EXCHANGE_BIND and the shim's port, with its statistics on
EXCHANGE_BALANCER_STATS. The supervisor of `make run` keeps every part
running, HAProxy included, and stops them all on Ctrl-C.
"""

import ipaddress
import logging
import os
import signal
import sys
import tempfile
from pathlib import Path

from app.endpoints import WILDCARDS
from app.local import cluster
from app.local.balancer import (
    LoopbackHosts,
    Timeouts,
    configuration,
    haproxy_program,
    server_states,
)
from app.local.cluster import PROJECT
from app.local.supervisor import ChildProcess, Part, Supervisor, database_parts
from app.run import (
    SHIM_COMMAND,
    STOP_TIMEOUT,
    WEB_COMMAND,
    check_settings,
    shim_answers,
    web_answers,
)

log = logging.getLogger("app.run")

DEFAULT_HOSTS = 3
FIRST_HOST = "127.0.0.2"
DEFAULT_STATS = "127.0.0.1:8404"
DRAIN_SECONDS = "2"  # two failed checks, 0.5 s apart, take an instance out
INSTALL_HAPROXY = (
    "make cluster needs HAProxy: install it with `sudo apt-get install haproxy` "
    "(Debian, Ubuntu) or your system's package manager, then run make cluster again"
)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s [cluster] %(message)s")
    argv = sys.argv[1:] if argv is None else argv
    environment = dict(os.environ)
    if argv == ["restart"]:
        return _request_rolling_restart(environment)
    haproxy = haproxy_program(environment)
    if haproxy is None:
        log.error("%s", INSTALL_HAPROXY)
        return 1
    try:
        layout = Layout.from_env(environment)
        check_settings(environment)
    except ValueError as error:
        log.error("cannot start: %s", error)
        return 1
    parts = database_parts(environment)
    instances = [_instance(environment, layout, address) for address in layout.hosts]
    with tempfile.TemporaryDirectory(prefix="exchange-balancer-") as directory:
        settings = Path(directory) / "haproxy.cfg"
        settings.write_text(layout.balancer_configuration(environment, Path(directory)))
        balancer = ChildProcess(
            "HAProxy",
            [haproxy, "-db", "-f", str(settings)],
            environment,
            lambda: _states(layout) is not None,
            STOP_TIMEOUT,
            stop_signal=signal.SIGUSR1,  # soft stop: finish what is in flight
        )
        parts += [part for instance in instances for part in instance] + [balancer]
        pidfile = _pidfile(environment)
        pidfile.parent.mkdir(parents=True, exist_ok=True)
        pidfile.write_text(f"{os.getpid()}\n")
        supervisor = Supervisor(
            parts,
            float(environment.get("EXCHANGE_RESTART_DELAY") or 0.5),
            instances,
            lambda number: _in_service(layout, number),
        )
        log.info(
            "%d instances behind HAProxy: http://%s/, TCP %s, statistics http://%s/stats",
            len(layout.hosts),
            layout.http_bind,
            layout.tcp_bind,
            layout.stats_bind,
        )
        try:
            return supervisor.run()
        except cluster.ClusterError as error:
            log.error("%s", error)
            return 1
        finally:
            pidfile.unlink(missing_ok=True)


class Layout:
    """Where everything listens: the fronts, the statistics, and each instance's address."""

    def __init__(self, http_bind: str, tcp_bind: str, stats_bind: str, hosts: list[str]):
        self.http_bind = http_bind
        self.tcp_bind = tcp_bind
        self.stats_bind = stats_bind
        self.hosts = hosts
        self.web_port = int(http_bind.rpartition(":")[2])
        self.shim_port = int(tcp_bind.rpartition(":")[2])

    @classmethod
    def from_env(cls, environment: dict[str, str]) -> "Layout":
        http_bind = environment.get("EXCHANGE_BIND", "127.0.0.1:8000")
        tcp_host = environment.get("EXCHANGE_SHIM_HOST") or "127.0.0.1"
        tcp_bind = f"{tcp_host}:{environment.get('EXCHANGE_SHIM_PORT') or 12345}"
        for bind in (http_bind, tcp_bind):
            if bind.rpartition(":")[0] in WILDCARDS:
                raise ValueError(
                    f"{bind} would take the instances' ports on every address: "
                    "give EXCHANGE_BIND and EXCHANGE_SHIM_HOST one address each"
                )
        count = int(environment.get("EXCHANGE_HOSTS") or DEFAULT_HOSTS)
        first = ipaddress.ip_address(environment.get("EXCHANGE_HOSTS_FROM") or FIRST_HOST)
        hosts = [str(first + number) for number in range(count)]
        stats = environment.get("EXCHANGE_BALANCER_STATS") or DEFAULT_STATS
        return cls(http_bind, tcp_bind, stats, hosts)

    def balancer_configuration(self, environment: dict[str, str], directory: Path) -> str:
        """With EXCHANGE_TLS_CERT and EXCHANGE_TLS_KEY, both fronts terminate TLS: HAProxy
        reads them as one file, written here, readable by this user only."""
        timeouts = Timeouts(
            server=float(environment.get("EXCHANGE_BALANCER_SERVER_TIMEOUT") or 30),
            request=float(environment.get("EXCHANGE_REQUEST_TIMEOUT") or 10),
            client=float(environment.get("EXCHANGE_IDLE_TIMEOUT") or 75),
        )
        pem = None
        certificate, key = environment.get("EXCHANGE_TLS_CERT"), environment.get("EXCHANGE_TLS_KEY")
        if certificate and key:
            pem = directory / "tls.pem"
            pem.touch(mode=0o600)
            pem.write_bytes(Path(certificate).read_bytes() + b"\n" + Path(key).read_bytes())
        return configuration(
            LoopbackHosts(self.hosts),
            self.http_bind,
            self.tcp_bind,
            self.stats_bind,
            self.web_port,
            self.shim_port,
            timeouts,
            str(pem) if pem else None,
        )

    @property
    def stats_url(self) -> str:
        return f"http://{self.stats_bind}/stats"


def _instance(environment: dict[str, str], layout: Layout, address: str) -> list[Part]:
    """An instance's gunicorn and shim, on `address`; the shim forwards to its own gunicorn."""
    own = dict(
        environment,
        EXCHANGE_BIND=f"{address}:{layout.web_port}",
        EXCHANGE_SHIM_HOST=address,
        EXCHANGE_SHIM_PORT=str(layout.shim_port),
        EXCHANGE_SHIM_UPSTREAM=f"http://{address}:{layout.web_port}/",
    )
    own.setdefault("EXCHANGE_DRAIN_SECONDS", DRAIN_SECONDS)
    own.pop("PROMETHEUS_MULTIPROC_DIR", None)  # each gunicorn empties its own at start
    web_url = f"http://{address}:{layout.web_port}/"
    return [
        ChildProcess(f"gunicorn {address}", WEB_COMMAND, own, web_answers(web_url), STOP_TIMEOUT),
        ChildProcess(
            f"shim {address}",
            SHIM_COMMAND,
            own,
            shim_answers((address, layout.shim_port)),
            STOP_TIMEOUT,
        ),
    ]


def _states(layout: Layout) -> dict[tuple[str, str], str] | None:
    try:
        return server_states(layout.stats_url)
    except OSError:
        return None


def _in_service(layout: Layout, number: int) -> bool:
    """Whether HAProxy sends the instance's both kinds of traffic again."""
    states = _states(layout) or {}
    host = f"host{number}"
    return states.get(("web", host)) == "UP" and states.get(("shims", host)) == "UP"


def _pidfile(environment: dict[str, str]) -> Path:
    """Where `make cluster` notes its pid for `make cluster-restart`: one per front address."""
    front = environment.get("EXCHANGE_BIND", "127.0.0.1:8000").replace(":", "-")
    return PROJECT / "var" / f"cluster-{front}.pid"


def _request_rolling_restart(environment: dict[str, str]) -> int:
    pidfile = _pidfile(environment)
    try:
        pid = int(pidfile.read_text())
        os.kill(pid, signal.SIGHUP)
    except (OSError, ValueError):
        log.error("no make cluster is running for EXCHANGE_BIND (no live pid in %s)", pidfile)
        return 1
    log.info("rolling restart requested from make cluster (pid %d): its log follows it", pid)
    return 0


if __name__ == "__main__":
    sys.exit(main())
