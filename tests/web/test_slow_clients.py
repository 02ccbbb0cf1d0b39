"""Slow, idle and too many clients against the real stack, while ordinary clients trade.

The attackers connect from other loopback addresses (127.0.0.2 and up) than
the ordinary clients and the shim (127.0.0.1), as they would from another
machine: the per-client cap tells them apart. Every test checks that every
ordinary request over HTTP and through the shim was answered, that nothing
acknowledged was lost, and that the audit finds the books balanced.
"""

import contextlib
import http.client
import select
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import count
from urllib.parse import urlsplit

import pytest
import requests
from sqlalchemy import select as select_rows

from app.storage.schema import accounts, orders
from tests.conftest import SHIM_LIMIT_FLAG, SMALL_BODY_LIMIT
from tests.integrity.books import broken_rules
from tests.integrity.traffic import ACCOUNTS, OPENING, STRICT, SYMBOLS, background_load, post_create
from tests.shim.processes import running_shim
from tests.shim.wire import children, connect, converse, framed, read_to_end
from tests.web.servers import address_of, error_reply, running_gunicorn
from tests.web.test_metrics import increase, scrape

REQUEST_TIMEOUT_S = 1.0
PER_CLIENT = 30  # connections from one address, per worker (2 workers)
PACE_S = 0.2  # between two pieces of a dribbled request
GIVE_UP_S = 10.0  # an attacker that got no reply by then was never cut off
TCP_ACCOUNT_IDS = count(10_000)


@pytest.fixture(scope="module")
def stack(database_url, schema_engine, tmp_path_factory):
    """gunicorn with a 1 s request deadline and a small per-client cap, and a shim before it."""
    log = tmp_path_factory.mktemp("slow-clients") / "gunicorn.log"
    with running_gunicorn(
        database_url,
        log,
        EXCHANGE_REQUEST_TIMEOUT=str(REQUEST_TIMEOUT_S),
        EXCHANGE_MAX_CONNECTIONS_PER_CLIENT=str(PER_CLIENT),
        EXCHANGE_MAX_BODY_BYTES=str(SMALL_BODY_LIMIT),
    ) as server:
        with running_shim(server.url, *SHIM_LIMIT_FLAG) as shim:
            yield server, shim


@dataclass
class Outcome:
    """What one attacking connection got back, and when, counted from its first byte."""

    reply: bytes
    after_s: float

    @property
    def status_and_error(self) -> tuple[int, str]:
        return error_reply(self.reply)


def attacker(url: str, source: str) -> socket.socket:
    """A connection to the server at `url` from the loopback address `source`."""
    return connect(address_of(url), GIVE_UP_S, source)


def dribble(url: str, source: str, first: bytes, piece: bytes) -> Outcome:
    """Send `first`, then `piece` every PACE_S until the server answers or closes."""
    with attacker(url, source) as connection:
        started = time.monotonic()
        connection.sendall(first)
        while time.monotonic() - started < GIVE_UP_S:
            readable, _, _ = select.select([connection], [], [], PACE_S)
            if readable:
                return Outcome(read_to_end(connection), time.monotonic() - started)
            with contextlib.suppress(OSError):  # closed meanwhile: read what was said
                connection.sendall(piece)
        return Outcome(b"", time.monotonic() - started)


def dribbling(url: str, source: str, connections: int, first: bytes, piece: bytes):
    """`connections` dribbling at once, in threads; their outcomes come from `.result()`."""
    pool = ThreadPoolExecutor(connections)
    futures = [pool.submit(dribble, url, source, first, piece) for _ in range(connections)]
    pool.shutdown(wait=False)
    return futures


@contextlib.contextmanager
def ordinary_clients(server, engine):
    """Traders over HTTP for the duration of the block; then nothing lost, the audit clean."""
    post_create(server.url, ACCOUNTS, OPENING)
    with background_load(server.url, ACCOUNTS, SYMBOLS, STRICT) as load:
        yield load
    assert load.failures() == []
    with engine.connect() as connection:
        stored = set(connection.scalars(select_rows(orders.c.id)))
    assert load.acknowledged_order_ids() <= stored
    assert broken_rules(engine) == []


def assert_tcp_clients_answered(shim, clients: int = 5) -> None:
    for _ in range(clients):
        account = next(TCP_ACCOUNT_IDS)
        request = b'<create><account id="%d" balance="1"/></create>' % account
        assert children(converse(shim.address, framed(request))) == [
            ("created", {"id": str(account)}, None)
        ]


def cut_off_warnings(server, source: str) -> int:
    return server.log_text().count(f"client {source} cut off: request not complete within 1 s")


def assert_cut_off_in_time(outcome: Outcome) -> None:
    assert outcome.status_and_error == (408, "request not complete within 1 s")
    assert b"Connection: close" in outcome.reply
    assert REQUEST_TIMEOUT_S <= outcome.after_s < REQUEST_TIMEOUT_S + 2


def test_headers_sent_a_line_at_a_time_get_408_while_others_are_served(stack, engine):
    server, shim = stack
    before = scrape(server.url)
    with ordinary_clients(server, engine) as load:
        slow = dribbling(server.url, "127.0.0.2", 20, b"POST / HTTP/1.1\r\n", b"X-Slow: 1\r\n")
        load.wait_for_more("answered", 50)
        assert_tcp_clients_answered(shim)
        outcomes = [future.result() for future in slow]
    for outcome in outcomes:
        assert_cut_off_in_time(outcome)
    assert (
        increase(before, scrape(server.url), "exchange_http_timeouts_total", stage="request") >= 20
    )
    assert 1 <= cut_off_warnings(server, "127.0.0.2") <= 2, "one warning per worker, not per client"


def test_body_sent_a_byte_at_a_time_gets_408_and_is_not_executed(stack, engine):
    server, shim = stack
    create = b'<create><account id="77" balance="1"/></create>'
    head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n"
    with ordinary_clients(server, engine) as load:
        slow = dribbling(server.url, "127.0.0.3", 20, head + create, b" ")
        load.wait_for_more("answered", 50)
        assert_tcp_clients_answered(shim)
        outcomes = [future.result() for future in slow]
    for outcome in outcomes:
        assert_cut_off_in_time(outcome)
    with engine.connect() as connection:
        assert connection.scalar(select_rows(accounts.c.id).where(accounts.c.id == "77")) is None


def test_connections_past_the_per_client_cap_get_503_while_others_are_served(stack, engine):
    server, shim = stack
    before = scrape(server.url)
    with ordinary_clients(server, engine) as load, contextlib.ExitStack() as held:
        flood = [held.enter_context(attacker(server.url, "127.0.0.5")) for _ in range(100)]
        time.sleep(0.5)  # the workers accept, then refuse or hold each
        readable, _, _ = select.select(flood, [], [], 0)
        refused = [Outcome(read_to_end(connection), 0) for connection in readable]
        load.wait_for_more("answered", 50)
        assert_tcp_clients_answered(shim)
        during = scrape(server.url)
    assert len(refused) >= 100 - 2 * PER_CLIENT
    for outcome in refused:
        assert outcome.status_and_error == (503, "connection refused: too many from client")
    assert increase(
        before, during, "exchange_http_refused_connections_total", reason="too_many_from_client"
    ) == len(refused)
    assert during[("exchange_http_connections", ())] >= 100 - len(refused)


def one_request_then_silence(url: str, source: str) -> socket.socket:
    address = urlsplit(url)
    client = http.client.HTTPConnection(
        address.hostname, address.port, timeout=GIVE_UP_S, source_address=(source, 0)
    )
    client.request("GET", "/health")
    response = client.getresponse()
    assert response.status == 200 and response.read()
    return client.sock


def test_idle_connections_are_closed_quietly_while_others_are_served(
    database_url, engine, tmp_path
):
    """Silent before a first request or between two: closed after the idle time, no reply."""
    idle = {"EXCHANGE_IDLE_TIMEOUT": "1"}
    with (
        running_gunicorn(database_url, tmp_path / "gunicorn.log", **idle) as server,
        running_shim(server.url) as shim,
        ordinary_clients(server, engine) as load,
    ):
        silent = [attacker(server.url, "127.0.0.4") for _ in range(20)]
        after_one = [one_request_then_silence(server.url, "127.0.0.4") for _ in range(20)]
        started = time.monotonic()
        closed_quietly = [read_to_end(connection) == b"" for connection in silent + after_one]
        waited = time.monotonic() - started
        for connection in silent + after_one:
            connection.close()
        load.wait_for_more("answered", 50)
        assert_tcp_clients_answered(shim)
    assert all(closed_quietly)
    assert waited < 3


def test_connections_past_the_cap_get_503_and_the_service_serves_once_they_go(
    database_url, engine, tmp_path
):
    capped = {"EXCHANGE_WORKERS": "1", "EXCHANGE_MAX_CONNECTIONS": "20"}
    with running_gunicorn(database_url, tmp_path / "gunicorn.log", **capped) as server:
        with contextlib.ExitStack() as held:
            flood = [held.enter_context(attacker(server.url, "127.0.0.6")) for _ in range(40)]
            time.sleep(0.5)  # the worker accepts, then refuses or holds each
            readable, _, _ = select.select(flood, [], [], 0)
            refused = [Outcome(read_to_end(connection), 0) for connection in readable]
        assert len(refused) == 20
        for outcome in refused:
            assert outcome.status_and_error == (503, "connection refused: too many connections")
        assert requests.get(f"{server.url}/health", timeout=10).status_code == 200
        assert "client 127.0.0.6 connection refused: too many connections" in server.log_text()


def test_a_client_that_does_not_take_its_replies_is_cut_off(stack):
    """Requests pipelined without reading a reply: once the buffers between are full,
    the reply waits, and after the deadline the connection closes."""
    server, _ = stack
    before = scrape(server.url)
    with attacker(server.url, "127.0.0.7") as connection:
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        started = time.monotonic()
        with contextlib.suppress(OSError):  # the server closing, sooner or later
            while time.monotonic() - started < GIVE_UP_S:
                connection.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n" * 100)
    assert increase(before, scrape(server.url), "exchange_http_timeouts_total", stage="reply") == 1
    assert "client 127.0.0.7 cut off: reply not complete within 1 s" in server.log_text()


def test_requests_still_arriving_are_shown_in_the_metrics(stack):
    server, _ = stack
    with attacker(server.url, "127.0.0.8") as slow:
        slow.sendall(b"POST / HTTP/1.1\r\nHost: x\r\n")
        time.sleep(0.2)  # the worker reads the first bytes
        during = scrape(server.url)
        assert read_to_end(slow).startswith(b"HTTP/1.1 408")
    assert during[("exchange_http_requests_arriving", ())] >= 1
    after = scrape(server.url)
    assert after[("exchange_http_requests_arriving", ())] == 0
