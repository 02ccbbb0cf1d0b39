"""`make cluster` in a subprocess (`python -m app.cluster`), on free ports and addresses."""

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from app.local.balancer import server_states
from app.local.cluster import PROJECT, free_port
from tests.launcher import STOP_TIMEOUT

START_TIMEOUT = 90.0


@dataclass
class RunningCluster:
    process: subprocess.Popen
    web_url: str
    tcp_address: tuple[str, int]
    stats_url: str
    hosts: list[str]
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def states(self) -> dict[tuple[str, str], str]:
        try:
            return server_states(self.stats_url)
        except OSError:
            return {}

    def wait_until(self, condition, what: str, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert self.process.poll() is None, f"make cluster exited:\n{self.log_text()}"
            assert time.monotonic() < deadline, f"not {what} in {timeout} s:\n{self.log_text()}"
            time.sleep(0.1)

    def host_state(self, number: int) -> set[str]:
        states = self.states()
        return {states.get(("web", f"host{number}")), states.get(("shims", f"host{number}"))}

    def wait_for_hosts(self, state: str, *numbers: int, timeout: float = START_TIMEOUT) -> None:
        numbers = numbers or tuple(range(1, len(self.hosts) + 1))
        self.wait_until(
            lambda: all(self.host_state(n) == {state} for n in numbers),
            f"hosts {numbers} {state}",
            timeout,
        )

    def instance_pids(self, number: int) -> list[int]:
        """Every process of instance `number`: its gunicorn master and workers, its shim."""
        address = self.hosts[number - 1].encode()
        pids = []
        for child in _children(self.process.pid):
            with contextlib.suppress(OSError):
                environment = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
                if b"EXCHANGE_SHIM_HOST=" + address in environment:
                    pids += [child, *_descendants(child)]
        return pids

    def interrupt(self) -> int:
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(STOP_TIMEOUT)


def _children(pid: int) -> list[int]:
    return [
        int(child)
        for listing in Path(f"/proc/{pid}/task").glob("*/children")
        for child in listing.read_text().split()
    ]


def _descendants(pid: int) -> list[int]:
    found = []
    for child in _children(pid):
        found += [child, *_descendants(child)]
    return found


@contextlib.contextmanager
def running_cluster(log: Path, hosts: int = 3, **settings: str):
    """make cluster on free ports, its instances on loopback addresses no other run uses
    (127.X.Y.2 and up, X.Y from a free port), ready when yielded, interrupted after."""
    http_port, tcp_port, stats_port = free_port(), free_port(), free_port()
    first = f"127.{http_port // 256 % 256}.{http_port % 256}.2"
    environment = {
        **os.environ,
        "EXCHANGE_BIND": f"127.0.0.1:{http_port}",
        "EXCHANGE_SHIM_HOST": "127.0.0.1",
        "EXCHANGE_SHIM_PORT": str(tcp_port),
        "EXCHANGE_BALANCER_STATS": f"127.0.0.1:{stats_port}",
        "EXCHANGE_HOSTS": str(hosts),
        "EXCHANGE_HOSTS_FROM": first,
        "EXCHANGE_WORKERS": "1",
        "EXCHANGE_RESTART_DELAY": "0.1",
        **settings,
    }
    environment.pop("EXCHANGE_SHIM_UPSTREAM", None)
    with log.open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cluster"],
            cwd=PROJECT,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    prefix = first.rsplit(".", 1)[0]
    running = RunningCluster(
        process,
        f"http://127.0.0.1:{http_port}",
        ("127.0.0.1", tcp_port),
        f"http://127.0.0.1:{stats_port}/stats",
        [f"{prefix}.{2 + number}" for number in range(hosts)],
        log,
    )
    try:
        running.wait_for_hosts("UP")
        yield running
    finally:
        if process.poll() is None:
            try:
                running.interrupt()
            except subprocess.TimeoutExpired:
                process.kill()
                raise
