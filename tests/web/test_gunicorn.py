"""The real server: keep-alive, chunked bodies and the size limit over a socket."""

import http.client
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest
import requests
from lxml import etree
from sqlalchemy import select

from app.storage.schema import accounts, symbols
from tests.conftest import SMALL_BODY_LIMIT
from tests.shim import wire
from tests.web.servers import address_of, error_reply, running_gunicorn

CREATE = b'<create><account id="1" balance="10"/></create>'


def connect(server: str) -> http.client.HTTPConnection:
    address = urlsplit(server)
    return http.client.HTTPConnection(address.hostname, address.port, timeout=10)


def exchange(connection, body, headers=None, encode_chunked=False):
    connection.request("POST", "/", body=body, headers=headers or {}, encode_chunked=encode_chunked)
    response = connection.getresponse()
    return response.status, response.getheader("Content-Type"), response.read()


def chunks(data: bytes, size: int = 7):
    return (data[start : start + size] for start in range(0, len(data), size))


def test_connection_is_kept_alive_between_requests(server, engine):
    connection = connect(server)
    exchange(connection, CREATE)
    first_socket = connection.sock
    status, content_type, body = exchange(connection, CREATE)
    assert connection.sock is first_socket, "the server closed a keep-alive connection"
    assert status == 200 and content_type.startswith("application/xml")
    assert etree.fromstring(body)[0].text == "account already exists"


def test_chunked_body_is_read_whole(server, engine):
    connection = connect(server)
    status, _, body = exchange(
        connection, chunks(CREATE), {"Transfer-Encoding": "chunked"}, encode_chunked=True
    )
    assert status == 200
    assert etree.fromstring(body)[0].tag == "created"


def test_chunked_body_over_the_limit_gets_413(server, engine):
    oversize = b"<create>" + b" " * (4 * SMALL_BODY_LIMIT) + b"</create>"
    connection = connect(server)
    status, _, body = exchange(
        connection, chunks(oversize, 1000), {"Transfer-Encoding": "chunked"}, encode_chunked=True
    )
    assert status == 413
    assert etree.fromstring(body)[0].tag == "error"


def test_declared_body_over_the_limit_gets_413_and_server_stays_up(server, engine):
    connection = connect(server)
    status, _, _ = exchange(connection, b"<create>" + b" " * (10 * SMALL_BODY_LIMIT) + b"</create>")
    assert status == 413
    status, _, _ = exchange(connect(server), CREATE)
    assert status == 200


def test_health_endpoint_answers(server):
    connection = connect(server)
    connection.request("GET", "/health")
    assert connection.getresponse().status == 200


def test_access_lines_are_written_only_when_asked_for(database_url, schema_engine, tmp_path):
    access_log = tmp_path / "access.log"
    with (
        running_gunicorn(database_url, tmp_path / "quiet.log") as quiet,
        running_gunicorn(
            database_url, tmp_path / "told.log", EXCHANGE_ACCESS_LOG=str(access_log)
        ) as told,
    ):
        for gunicorn in (quiet, told):
            exchange(connect(gunicorn.url), CREATE)
        deadline = time.monotonic() + 10  # the line is written after the reply is sent
        while '"POST / HTTP/1.1" 200' not in access_log.read_text():
            assert time.monotonic() < deadline, access_log.read_text()
            time.sleep(0.05)
        assert '"POST / HTTP/1.1"' not in quiet.log_text()


def _half_closed_exchange(server: str, request: bytes) -> bytes:
    """Send `request`, stop sending (half-close), then read the reply to the end."""
    with wire.connect(address_of(server)) as connection:
        connection.sendall(request)
        connection.shutdown(socket.SHUT_WR)
        return wire.read_to_end(connection)


def test_body_shorter_than_its_content_length_gets_400_and_is_not_run(server, engine):
    reply = _half_closed_exchange(
        server,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(CREATE) + 100, CREATE),
    )
    assert error_reply(reply) == (
        400,
        f"request body incomplete: {len(CREATE)} of its {len(CREATE) + 100} bytes arrived",
    )
    assert _accounts(engine) == []


def test_chunked_body_without_its_last_chunk_gets_400_and_is_not_run(server, engine):
    reply = _half_closed_exchange(
        server,
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n"
        % (len(CREATE), CREATE),
    )
    assert error_reply(reply) == (400, "request body incomplete: it ended before its last chunk")
    assert _accounts(engine) == []


def test_headers_cut_short_by_a_half_close_get_400_rather_than_silence(server, engine):
    reply = _half_closed_exchange(server, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Le")
    assert error_reply(reply) == (400, "request incomplete: the connection closed in its headers")


def test_a_client_that_expects_100_continue_gets_it_before_it_sends_its_body(server, engine):
    with wire.connect(address_of(server)) as connection:
        connection.sendall(
            b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
            b"Content-Length: %d\r\n\r\n" % len(CREATE)
        )
        connection.settimeout(0.5)  # curl waits a second before it sends the body anyway
        assert connection.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        connection.settimeout(wire.TIMEOUT)
        connection.sendall(CREATE)
        stream = connection.makefile("rb")
        assert stream.readline().startswith(b"HTTP/1.1 200 ")
    assert _accounts(engine) == ["1"]


def test_a_body_over_the_limit_expecting_100_continue_is_refused_without_it(server, engine):
    reply = _half_closed_exchange(
        server,
        b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
        b"Content-Length: %d\r\n\r\n" % (2 * SMALL_BODY_LIMIT),
    )
    assert error_reply(reply)[0] == 413


def test_a_chunk_larger_than_the_limit_is_refused_at_once(server, engine):
    """Not after the request's deadline, waiting for bytes the limit would refuse anyway."""
    with wire.connect(address_of(server)) as connection:
        started = time.monotonic()
        connection.sendall(
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"%x\r\n<create>" % (4 * SMALL_BODY_LIMIT)
        )
        reply = wire.read_to_end(connection)
        assert time.monotonic() - started < 2
    assert error_reply(reply) == (
        413,
        f"request is larger than the limit of {SMALL_BODY_LIMIT} bytes",
    )


def _accounts(engine) -> list[str]:
    with engine.connect() as connection:
        return list(connection.scalars(select(accounts.c.id)))


@pytest.mark.parametrize(
    "request_head, status",
    [
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: x\r\nnot a header line\r\n\r\n", 400),
        (b"POST /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"POST / HTTP/1.1\r\n" + b"X-Many: 1\r\n" * 200 + b"\r\n", 431),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
    ],
    ids=["bad content-length", "bad header line", "long request line", "too many headers",
         "bad chunk size"],
)  # fmt: skip
def test_malformed_http_gets_the_xml_error_document(server, engine, request_head, status):
    got, why = error_reply(_half_closed_exchange(server, request_head))
    assert got == status and why
    assert _accounts(engine) == []


def test_reads_have_slots_of_their_own_and_never_wait_behind_orders(database_url, engine, tmp_path):
    one_slot = {"EXCHANGE_WORKERS": "1", "EXCHANGE_CONCURRENCY": "1"}
    with running_gunicorn(database_url, tmp_path / "gunicorn.log", **one_slot) as server:
        setup = (
            b'<create><account id="1" balance="100"/>'
            b'<symbol sym="LANE"><account id="1">5</account></symbol></create>'
        )
        assert requests.post(server.url, data=setup, timeout=10).status_code == 200
        order = b'<transactions id="1"><order sym="LANE" amount="1" limit="1"/></transactions>'
        with ThreadPoolExecutor(1) as pool:
            with engine.begin() as holder:
                lock = select(symbols.c.symbol).where(symbols.c.symbol == "LANE").with_for_update()
                holder.execute(lock)
                waiting = pool.submit(requests.post, server.url, data=order, timeout=30)
                time.sleep(0.5)  # the order holds the only slot, waiting for the symbol's lock
                with pytest.raises(requests.Timeout):
                    requests.post(server.url, data=order, timeout=1)
                book = requests.get(f"{server.url}/symbols/LANE/book", timeout=5)
                assert book.status_code == 200
            assert waiting.result().status_code == 200
