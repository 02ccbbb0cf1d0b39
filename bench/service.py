"""The service under test, started by the benchmark itself, and what its processes cost.

The same commands as `make run` (app/run.py), on free ports, against a
cluster of the benchmark's own; pinning and accounting read /proc, so this
runs on Linux only, as `taskset` does. The code comes from a source
directory, this checkout unless told otherwise (a baseline revision's
checkout, see bench/baseline.py), with our interpreter.
"""

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from app.local.balancer import server_states
from app.local.cluster import APP_DATABASE, PROJECT, Cluster, free_port
from app.run import SHIM_COMMAND, WEB_COMMAND

READY_TIMEOUT_S = 60
BENCH_MASTER_SECRET = "the benchmark's own master secret, for its points with keys"
STOP_TIMEOUT_S = 35
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
TICKS_PER_S = os.sysconf("SC_CLK_TCK")


@dataclass
class Usage:
    """Resident memory (MB) and CPU time (s) of a set of processes, at one moment."""

    rss_mb: float = 0.0
    cpu_s: float = 0.0


class Service:
    """gunicorn and the TCP shim in front of it, on a running cluster.

    `source` is the directory its code is imported from, `database` its
    database in the cluster, `commands` its gunicorn's and its shim's.
    """

    def __init__(
        self,
        cluster: Cluster,
        log_dir: Path,
        name: str = "service",
        source: Path = PROJECT,
        database: str = APP_DATABASE,
        commands: tuple[list[str], list[str]] = (WEB_COMMAND, SHIM_COMMAND),
    ):
        self.cluster = cluster
        self.name = name
        self.source = source
        self.database = database
        self.commands = commands
        self.http_port = free_port()
        self.tcp_port = free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.workers = 0
        self.auth = False
        self._log = log_dir / f"{name}.log"
        self._children: list[subprocess.Popen] = []

    def environment(self) -> dict[str, str]:
        """What a program of this service's code needs: its own directory first
        on the import path, and its own database."""
        environment = dict(
            os.environ, PYTHONPATH=str(self.source), DATABASE_URL=self.cluster.url(self.database)
        )
        # Unset, gunicorn makes a metrics directory of its own; a shared one
        # would be emptied by whichever service starts last.
        environment.pop("PROMETHEUS_MULTIPROC_DIR", None)
        return environment

    def start(self, workers: int, auth: bool = False) -> None:
        """Start with `workers` workers, and authentication on when `auth`."""
        environment = dict(
            self.environment(),
            EXCHANGE_AUTH="on" if auth else "off",
            EXCHANGE_AUTH_SECRET=BENCH_MASTER_SECRET,
            EXCHANGE_BIND=f"127.0.0.1:{self.http_port}",
            EXCHANGE_WORKERS=str(workers),
            EXCHANGE_LOG_LEVEL="warning",
            EXCHANGE_SHIM_HOST="127.0.0.1",
            EXCHANGE_SHIM_PORT=str(self.tcp_port),
            EXCHANGE_SHIM_UPSTREAM=f"{self.url}/",
            **self.settings(),
        )
        environment.pop("EXCHANGE_ACCESS_LOG", None)
        log = open(self._log, "ab")
        self._children = [
            # Own sessions, as in app/run.py: Ctrl-C reaches the benchmark only,
            # which then stops the service before the database.
            subprocess.Popen(
                command,
                env=environment,
                cwd=self.source,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
            for command in self.commands
        ]
        log.close()
        self.workers, self.auth = workers, auth
        self._wait_until_ready()

    def settings(self) -> dict[str, str]:
        """Environment variables of this kind of service, beyond the common ones."""
        return {}

    def stop(self) -> None:
        for child in self._children:
            if child.poll() is None:
                child.terminate()
        for child in self._children:
            try:
                child.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        self._children = []

    def restart(self, workers: int, auth: bool = False) -> None:
        self.stop()
        self.start(workers, auth)

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            for child in self._children:
                if child.poll() is not None:
                    raise RuntimeError(
                        f"{self.name}: {' '.join(child.args[1:3])} exited with status "
                        f"{child.returncode}; "
                        f"see {self._log}"
                    )
            if self._healthy() and self._all_running():
                return
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} was not ready within {READY_TIMEOUT_S} s; see {self._log}")

    def _all_running(self) -> bool:
        """gunicorn's master, every worker, and the shim."""
        return len(self.service_pids()) > self.workers + 1

    def metrics(self) -> str:
        """Its /metrics, summed over its workers."""
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=10) as response:
            return response.read().decode()

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=5) as response:
                healthy = response.status == 200
            socket.create_connection(("127.0.0.1", self.tcp_port), timeout=5).close()
        except OSError:
            return False
        return healthy

    def service_pids(self) -> list[int]:
        """gunicorn's master and workers, and the shim."""
        return [pid for child in self._children for pid in process_tree(child.pid)]

    def database_pids(self) -> list[int]:
        """The postmaster and every process it forked (backends, writers, ...)."""
        try:
            postmaster = int((self.cluster.datadir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return []
        return process_tree(postmaster)

    def pin(self, cpus: set[int]) -> None:
        """Confine every thread of the service and the database to `cpus`, as
        `taskset -a -p` does; processes they fork later inherit it."""
        for pid in self.service_pids() + self.database_pids():
            set_affinity(pid, cpus)


class ClusterService(Service):
    """`make cluster` (app/cluster.py): `hosts` instances of the service behind HAProxy,
    each with the given workers, on addresses of their own."""

    def __init__(self, cluster: Cluster, log_dir: Path, hosts: int = 3):
        super().__init__(
            cluster, log_dir, name="cluster", commands=([sys.executable, "-m", "app.cluster"],)
        )
        self.hosts = hosts
        self.stats_port = free_port()

    def settings(self) -> dict[str, str]:
        return {
            "EXCHANGE_HOSTS": str(self.hosts),
            "EXCHANGE_HOSTS_FROM": f"127.{self.http_port // 256 % 256}.{self.http_port % 256}.2",
            "EXCHANGE_BALANCER_STATS": f"127.0.0.1:{self.stats_port}",
        }

    def _all_running(self) -> bool:
        try:
            states = server_states(f"http://127.0.0.1:{self.stats_port}/stats")
        except OSError:
            return False
        return len(states) == 2 * self.hosts and set(states.values()) == {"UP"}


TIERS = ("haproxy", "shim", "gunicorn", "postgres")


def tier_of(pid: int) -> str | None:
    """Which tier a process of the service or the database belongs to, from its command."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    words = {word.rsplit(b"/", 1)[-1] for word in command}
    if b"haproxy" in words:
        return "haproxy"
    if b"app.shim" in words:
        return "shim"
    if b"gunicorn" in words or any(word.startswith(b"gunicorn:") for word in words):
        return "gunicorn"
    if any(word.startswith(b"postgres") for word in words):
        return "postgres"
    return None


def tier_usage(pids: list[int]) -> dict[str, float]:
    """CPU seconds of `pids` by tier (TIERS); processes of no tier are left out."""
    seconds = dict.fromkeys(TIERS, 0.0)
    for pid in pids:
        tier = tier_of(pid)
        if tier is not None:
            seconds[tier] += usage([pid]).cpu_s
    return seconds


def process_tree(root: int) -> list[int]:
    """`root` and its descendants, alive now."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat_fields(int(entry.name))
            if stat:
                parents.setdefault(int(stat[1]), []).append(int(entry.name))
    tree, pending = [], [root]
    while pending:
        pid = pending.pop()
        tree.append(pid)
        pending.extend(parents.get(pid, []))
    return tree


def set_affinity(pid: int, cpus: set[int]) -> None:
    """Pin every thread of `pid`; a process or thread that has just exited is skipped."""
    try:
        threads = [int(task.name) for task in Path(f"/proc/{pid}/task").iterdir()]
    except OSError:
        return
    for thread in threads:
        try:
            os.sched_setaffinity(thread, cpus)
        except (ProcessLookupError, PermissionError):
            pass


def usage(pids: list[int]) -> Usage:
    """Summed resident set size and CPU time (user + system) of `pids`."""
    total = Usage()
    for pid in pids:
        stat = _stat_fields(pid)
        if stat is None:
            continue
        # Fields after the command: state is [0], utime [11], stime [12], rss [21].
        total.cpu_s += (int(stat[11]) + int(stat[12])) / TICKS_PER_S
        total.rss_mb += int(stat[21]) * PAGE_BYTES / 1e6
    return total


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat after the command name (which may hold spaces), or None when gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()


def machine_busy_s() -> float:
    """CPU seconds the whole machine has spent on anything but idling, since boot."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle and iowait
    return (sum(fields[:8]) - idle) / TICKS_PER_S


def market_polls(scraped: str) -> float:
    """The polls a service's market feeds have made so far (app/market/feed.py), from a
    scrape of its /metrics."""
    found = re.search(r"^exchange_market_poll_duration_seconds_count (\S+)$", scraped, re.M)
    return float(found[1]) if found else 0.0
