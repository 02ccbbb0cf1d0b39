"""The operator's options: replies prefixed with their length line, connections kept open."""

import time

from tests.shim.wire import children, connect, error_text, framed, read_framed_reply

CREATE = b'<create><account id="%d" balance="10"/></create>'


def created(number: int):
    return [("created", {"id": str(number)}, None)]


def test_reply_is_prefixed_with_its_length_line(framed_shim, engine):
    with connect(framed_shim.address) as connection, connection.makefile("rb") as stream:
        connection.sendall(framed(CREATE % 1))
        assert children(read_framed_reply(stream)) == created(1)


def test_requests_one_after_another_share_one_connection(framed_shim, engine):
    with connect(framed_shim.address) as connection, connection.makefile("rb") as stream:
        for number in range(1, 6):
            connection.sendall(framed(CREATE % number))
            assert children(read_framed_reply(stream)) == created(number)


def test_pipelined_requests_get_their_replies_in_order(framed_shim, engine):
    with connect(framed_shim.address) as connection, connection.makefile("rb") as stream:
        connection.sendall(b"".join(framed(CREATE % number) for number in range(1, 6)))
        assert [children(read_framed_reply(stream)) for _ in range(5)] == [
            created(number) for number in range(1, 6)
        ]


def test_error_from_the_service_keeps_the_connection_open(framed_shim, engine):
    with connect(framed_shim.address) as connection, connection.makefile("rb") as stream:
        connection.sendall(framed(b"<oops/>"))
        assert error_text(read_framed_reply(stream)).startswith("root element must be")
        connection.sendall(framed(CREATE % 1))
        assert children(read_framed_reply(stream)) == created(1)


def test_framing_error_gets_a_framed_error_then_close(framed_shim, engine):
    with connect(framed_shim.address) as connection, connection.makefile("rb") as stream:
        connection.sendall(framed(CREATE % 1) + b"twelve\n")
        assert children(read_framed_reply(stream)) == created(1)
        assert error_text(read_framed_reply(stream)).startswith("malformed length line")
        assert stream.read() == b""


def test_idle_connection_between_requests_closes_quietly_after_the_idle_timeout(
    framed_shim, engine
):
    with connect(framed_shim.address) as connection, connection.makefile("rb") as stream:
        connection.sendall(framed(CREATE % 1))
        read_framed_reply(stream)
        idle_since = time.monotonic()
        assert stream.read() == b""
        assert 0.9 < time.monotonic() - idle_since < 4
