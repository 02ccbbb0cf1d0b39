"""A real gunicorn in a subprocess, started as `make run` starts it, its log kept in a file."""

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from app.run import WEB_COMMAND
from app.storage.cluster import PROJECT, free_port

READY_TIMEOUT = 60.0


@dataclass
class Gunicorn:
    process: subprocess.Popen
    url: str
    log: Path

    def wait_until_ready(self, timeout: float = READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                if requests.get(f"{self.url}/readyz", timeout=5).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        self.process.kill()
        raise AssertionError(f"gunicorn did not become ready:\n{self.log_text()}")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = 60.0) -> int:
        if self.process.poll() is None:
            self.process.terminate()
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise


def start_gunicorn(database_url: str, log: Path, **settings: str) -> Gunicorn:
    """Start serving `database_url` on a free port; `settings` are extra environment variables."""
    port = free_port()
    environment = dict(
        os.environ,
        DATABASE_URL=database_url,
        EXCHANGE_BIND=f"127.0.0.1:{port}",
        EXCHANGE_WORKERS="2",
        **settings,
    )
    with log.open("wb") as output:
        process = subprocess.Popen(
            WEB_COMMAND, cwd=PROJECT, env=environment, stdout=output, stderr=subprocess.STDOUT
        )
    return Gunicorn(process, f"http://127.0.0.1:{port}", log)
