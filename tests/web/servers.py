"""A real gunicorn in a subprocess, started as `make run` starts it, its log kept in a file."""

import contextlib
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import requests
from lxml import etree
from prometheus_client.parser import text_string_to_metric_families

from app.local.cluster import PROJECT, free_port
from app.run import STOP_TIMEOUT, WEB_COMMAND
from tests.processes import stop_gracefully

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
            except (requests.ConnectionError, requests.Timeout):  # not listening, or booting
                pass
            time.sleep(0.1)
        self.process.kill()
        raise AssertionError(f"gunicorn did not become ready:\n{self.log_text()}")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def worker_pids(self) -> set[int]:
        """The master's children: gunicorn's workers (psutil-free, from /proc)."""
        return {
            int(pid)
            for children in Path(f"/proc/{self.process.pid}/task").glob("*/children")
            for pid in children.read_text().split()
        }

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        return stop_gracefully(self.process, timeout)


def start_gunicorn(database_url: str, log: Path, port: int | None = None, **settings) -> Gunicorn:
    """Start serving `database_url` on a free port; `settings` are extra environment variables."""
    port = port or free_port()
    environment = {
        **os.environ,
        "DATABASE_URL": database_url,
        "EXCHANGE_BIND": f"127.0.0.1:{port}",
        "EXCHANGE_WORKERS": "2",
        **settings,
    }
    with log.open("ab") as output:
        process = subprocess.Popen(
            WEB_COMMAND, cwd=PROJECT, env=environment, stdout=output, stderr=subprocess.STDOUT
        )
    return Gunicorn(process, f"http://127.0.0.1:{port}", log)


@contextlib.contextmanager
def running_gunicorn(database_url: str, log: Path, port: int | None = None, **settings):
    """`start_gunicorn`, ready when yielded, stopped on the way out."""
    gunicorn = start_gunicorn(database_url, log, port, **settings)
    try:
        gunicorn.wait_until_ready()
        yield gunicorn
    finally:
        gunicorn.stop()


def address_of(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname, parts.port


def error_reply(reply: bytes) -> tuple[int, str]:
    """The status and the `<error>` text of a raw HTTP reply carrying the XML error document."""
    head, body = reply.split(b"\r\n\r\n", 1)
    assert b"content-type: application/xml" in head.lower(), head
    root = etree.fromstring(body)
    assert root.tag == "results" and root[0].tag == "error", reply
    return int(head.split()[1]), root[0].text


def post_while_restarting(url: str, document: str, timeout: float = 10.0) -> None:
    """POST a document that must be answered without an error, waiting out a service that
    is starting a new worker."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            reply = requests.post(url, data=document.encode(), timeout=timeout)
            break
        except requests.ConnectionError:
            assert time.monotonic() < deadline, "the service did not come back"
            time.sleep(0.1)
    assert reply.status_code == 200 and b"<error" not in reply.content, reply.content


Samples = dict[tuple[str, tuple], float]


def scrape(server: str, kind: str | None = None) -> Samples:
    """`/metrics` as {(name, labels): value}; only the metrics of `kind` (gauge, ...) if given."""
    response = requests.get(f"{server}/metrics", timeout=30)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        if kind is None or family.type == kind
        for sample in family.samples
    }


def negative_gauges(server: str) -> Samples:
    return {key: value for key, value in scrape(server, "gauge").items() if value < 0}


def counters_gone_down(before: Samples, after: Samples) -> Samples:
    """Counter samples lower after than before: a restart Prometheus would read as a reset."""
    return {
        key: after.get(key, 0.0) for key, value in before.items() if after.get(key, 0.0) < value
    }
