"""`make run` in a subprocess (`python -m app.run`), its output and its parts' kept in a file."""

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests
from lxml import etree

from app.local.cluster import PROJECT, free_port
from tests.shim.wire import children, converse, framed

START_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0
PROBE = b"<create/>"  # answered `<results/>` by the service, without touching a table


@dataclass
class Launcher:
    process: subprocess.Popen
    web_url: str
    shim_address: tuple[str, int]
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log_text():
            assert time.monotonic() < deadline, f"no {text!r} in the log:\n{self.log_text()}"
            time.sleep(0.05)

    def wait_until_serving(self, timeout: float = START_TIMEOUT) -> None:
        """Until both the web tier and the shim in front of it answer."""
        deadline = time.monotonic() + timeout
        while not (self._web_ready() and self._shim_ready()):
            assert self.process.poll() is None, f"the launcher exited:\n{self.log_text()}"
            assert time.monotonic() < deadline, f"not serving:\n{self.log_text()}"
            time.sleep(0.1)

    def _web_ready(self) -> bool:
        try:
            return requests.get(f"{self.web_url}/readyz", timeout=5).status_code == 200
        except (requests.ConnectionError, requests.Timeout):
            return False

    def _shim_ready(self) -> bool:
        """The shim replies, and not for want of the service (with authentication on, the
        probe is refused: a reply all the same)."""
        try:
            replies = children(converse(self.shim_address, framed(PROBE)))
        except (OSError, etree.XMLSyntaxError):  # not listening yet, or cut off
            return False
        return not any((text or "").startswith("service unavailable") for _, _, text in replies)

    def child_pid(self, module: str, timeout: float = START_TIMEOUT) -> int:
        """The pid of the launcher's child running `module` (`gunicorn`, `app.shim`), once
        there is one."""
        deadline = time.monotonic() + timeout
        while (pid := self._child_running(module.encode())) is None:
            assert time.monotonic() < deadline, f"the launcher runs no {module}:\n{self.log_text()}"
            time.sleep(0.05)
        return pid

    def _child_running(self, module: bytes) -> int | None:
        for listing in Path(f"/proc/{self.process.pid}/task").glob("*/children"):
            for pid in listing.read_text().split():
                with contextlib.suppress(OSError):  # it has just exited
                    if module in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0"):
                        return int(pid)
        return None

    def interrupt(self, signum: int = signal.SIGINT) -> int:
        """Ctrl-C (or another signal), then the launcher's exit status once everything has
        stopped."""
        self.process.send_signal(signum)
        return self.process.wait(STOP_TIMEOUT)


@contextlib.contextmanager
def running_launcher(log: Path, **settings: str | None):
    """The launcher on free ports, with short restart pauses; `settings` are environment
    variables, None unsetting one. Interrupted on the way out if still running."""
    web_port, shim_port = free_port(), free_port()
    environment = {
        **os.environ,
        "EXCHANGE_BIND": f"127.0.0.1:{web_port}",
        "EXCHANGE_WORKERS": "1",
        "EXCHANGE_SHIM_HOST": "127.0.0.1",
        "EXCHANGE_SHIM_PORT": str(shim_port),
        "EXCHANGE_RESTART_DELAY": "0.1",
    }
    environment.pop("EXCHANGE_SHIM_UPSTREAM", None)  # the launcher's own choice is under test
    for name, value in settings.items():
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = value
    with log.open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.run"],
            cwd=PROJECT,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    shim_address = ("127.0.0.1", int(environment["EXCHANGE_SHIM_PORT"]))
    launcher = Launcher(process, f"http://127.0.0.1:{web_port}", shim_address, log)
    try:
        yield launcher
    finally:
        if process.poll() is None:
            try:
                launcher.interrupt()
            except subprocess.TimeoutExpired:
                process.kill()
                raise
