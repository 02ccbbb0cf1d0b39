"""A small request cannot ask for a huge reply (decisions: bounded replies), over HTTP and TCP.

The hostile-input campaign's request: a `<symbol>` whose sym is 200,000
characters, with 2,000 `<account/>` children, each answered with an error
echoing the sym. 220 KB got a 400 MB reply, took a worker from 70 MB to 1.1 GB
and stalled its other clients for 4 s. Served by one worker here, so that the
other client shares it.
"""

import re
import statistics
import threading
import time
from pathlib import Path

import pytest
import requests
from lxml import etree

from app.protocol.parser import REPLY_ALLOWANCE, REPLY_FACTOR
from tests.shim.processes import running_shim
from tests.shim.wire import converse, framed
from tests.web.servers import running_gunicorn

AMPLIFIER = (
    b'<create><symbol sym="'
    + b"A" * 200_000
    + b'!">'
    + b"<account/>" * 2000
    + b"</symbol></create>"
)
# The same with less sym and many more children: refused whole before anything runs.
MANY_TINY_GRANTS = (
    b'<create><symbol sym="' + b"A" * 1000 + b'!">' + b"<account/>" * 40_000 + b"</symbol></create>"
)
MEMORY_GROWTH_BOUND = 64 << 20  # bytes a worker's peak may grow by
OTHER_CLIENT_DELAY_BOUND = 0.1  # seconds


def bound(request: bytes) -> int:
    return REPLY_FACTOR * len(request) + REPLY_ALLOWANCE


@pytest.fixture(scope="module")
def served(database_url, schema_engine, tmp_path_factory):
    """One worker with the default body limit (1 MiB), the shim in front of it."""
    log = tmp_path_factory.mktemp("amplification") / "gunicorn.log"
    with running_gunicorn(database_url, log, EXCHANGE_WORKERS="1") as server:
        with running_shim(server.url) as shim:
            [worker] = server.worker_pids()
            yield server.url, shim.address, worker


def peak_memory(pid: int) -> int:
    """The process's largest resident set so far, in bytes."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status)[1]) * 1024


class OtherClient:
    """A client sending small requests to the same worker, timing each."""

    def __init__(self, url: str):
        self.url = url
        self.latencies: list[float] = []

    def run(self, stop: threading.Event) -> None:
        with requests.Session() as session:
            while not stop.is_set():
                started = time.monotonic()
                assert session.post(self.url, data=b"<create/>", timeout=30).status_code == 200
                self.latencies.append(time.monotonic() - started)
                time.sleep(0.005)


def test_the_amplifying_request_gets_a_reply_within_the_bound_over_http(served):
    url, _, worker = served
    other = OtherClient(url)
    stop = threading.Event()
    alongside = threading.Thread(target=other.run, args=(stop,))
    alongside.start()
    try:
        time.sleep(0.5)
        usual = statistics.median(other.latencies)
        before, seen = peak_memory(worker), len(other.latencies)
        reply = requests.post(url, data=AMPLIFIER, timeout=60)
        time.sleep(0.2)
    finally:
        stop.set()
        alongside.join()
    assert reply.status_code == 200
    assert len(reply.content) <= bound(AMPLIFIER)
    results = etree.fromstring(reply.content)
    assert len(results) == 2000 and results[0].get("sym") == "A" * 64 + "..."
    assert peak_memory(worker) - before < MEMORY_GROWTH_BOUND
    assert max(other.latencies[seen:]) < usual + OTHER_CLIENT_DELAY_BOUND


def test_the_amplifying_request_gets_a_reply_within_the_bound_over_tcp(served):
    _, shim, _ = served
    reply = converse(shim, framed(AMPLIFIER), timeout=60)
    assert len(etree.fromstring(reply)) == 2000
    assert len(reply) <= bound(AMPLIFIER)


def test_a_request_that_would_still_get_a_reply_past_the_bound_is_refused_whole(served):
    url, _, worker = served
    before = peak_memory(worker)
    reply = requests.post(url, data=MANY_TINY_GRANTS, timeout=60)
    assert reply.status_code == 400
    assert b"would get more than" in reply.content
    assert peak_memory(worker) - before < MEMORY_GROWTH_BOUND
