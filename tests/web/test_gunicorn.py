"""The real server: keep-alive, chunked bodies and the size limit over a socket."""

import http.client
import time
from urllib.parse import urlsplit

from lxml import etree

from tests.conftest import SMALL_BODY_LIMIT
from tests.web.servers import running_gunicorn

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
