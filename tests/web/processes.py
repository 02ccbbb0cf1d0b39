"""A real gunicorn in a subprocess, started as `make run` starts it."""

import contextlib
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from app.run import STOP_TIMEOUT, WEB_COMMAND
from app.storage.cluster import PROJECT, free_port

START_TIMEOUT = 30.0


@dataclass
class ServerProcess:
    url: str
    process: subprocess.Popen

    def worker_pids(self) -> set[int]:
        """The master's children: gunicorn's workers (psutil-free, from /proc)."""
        return {
            int(pid)
            for children in Path(f"/proc/{self.process.pid}/task").glob("*/children")
            for pid in children.read_text().split()
        }

    def stop(self) -> None:
        """SIGTERM: gunicorn finishes the requests in flight, then exits."""
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise


@contextlib.contextmanager
def running_server(database_url: str, port: int | None = None, **settings: str):
    """gunicorn on `database_url`, healthy when yielded; `settings` are EXCHANGE_* variables."""
    port = port or free_port()
    environment = dict(
        os.environ,
        DATABASE_URL=database_url,
        EXCHANGE_BIND=f"127.0.0.1:{port}",
        **{f"EXCHANGE_{name.upper()}": value for name, value in settings.items()},
    )
    server = ServerProcess(
        f"http://127.0.0.1:{port}", subprocess.Popen(WEB_COMMAND, cwd=PROJECT, env=environment)
    )
    try:
        wait_until_healthy(server)
        yield server
    finally:
        server.stop()


def wait_until_healthy(server: ServerProcess, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and server.process.poll() is None:
        try:
            if requests.get(f"{server.url}/health", timeout=1).status_code == 200:
                return
        except (requests.ConnectionError, requests.Timeout):  # not listening, or workers booting
            pass
        time.sleep(0.1)
    server.process.kill()
    raise RuntimeError(f"gunicorn did not become healthy at {server.url} within {timeout} s")
