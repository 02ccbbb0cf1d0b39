"""SPEC §5.2, default framing: length line, body, bare reply, close; and ways to get it wrong."""

import socket
import time

import pytest
import requests

from tests.conftest import SMALL_BODY_LIMIT
from tests.shim.wire import (
    children,
    connect,
    converse,
    error_text,
    framed,
    read_to_end,
    reset,
    send_in_parts,
)

CREATE = b'<create><account id="1" balance="10"/></create>'
CREATED = [("created", {"id": "1"}, None)]


def test_request_in_one_segment_gets_bare_reply_then_close(shim, engine):
    reply = converse(shim.address, framed(CREATE))
    assert reply.startswith(b"<?xml")
    assert children(reply) == CREATED


def test_length_line_split_across_segments(shim, engine):
    line, body = framed(CREATE).split(b"\n", 1)
    assert children(converse(shim.address, line[:1], line[1:], b"\n" + body)) == CREATED


def test_body_in_many_small_writes(shim, engine):
    message = framed(CREATE)
    parts = [message[start : start + 3] for start in range(0, len(message), 3)]
    assert children(converse(shim.address, *parts)) == CREATED


def test_carriage_return_before_the_newline_is_tolerated(shim, engine):
    assert children(converse(shim.address, framed(CREATE, newline=b"\r\n"))) == CREATED


def test_client_that_half_closes_after_its_request_gets_the_reply(shim, engine):
    with connect(shim.address) as connection:
        connection.sendall(framed(CREATE))
        connection.shutdown(socket.SHUT_WR)
        assert children(read_to_end(connection)) == CREATED


def test_bytes_past_the_announced_length_do_not_destroy_the_reply(shim, engine):
    """A client whose length leaves out its final newline still reads its reply."""
    assert children(converse(shim.address, framed(CREATE) + b"\n" * 1000)) == CREATED


def test_body_of_exactly_the_size_limit_is_forwarded(shim, engine):
    body = CREATE.replace(b"<create>", b"<create>" + b" " * (SMALL_BODY_LIMIT - len(CREATE)))
    assert len(body) == SMALL_BODY_LIMIT
    assert children(converse(shim.address, framed(body))) == CREATED


def test_empty_request_gets_the_service_error(shim):
    assert error_text(converse(shim.address, b"0\n")) == "request is empty"


def test_malformed_document_gets_the_service_error(shim):
    assert "not well-formed" in error_text(converse(shim.address, framed(b"<create>")))


@pytest.mark.parametrize(
    "line", [b"abc", b"-5", b"+5", b" 5", b"5 ", b"", b"0x10", b"5\r\r", b"4.0", b"\xff\xfe"]
)
def test_malformed_length_line_gets_error_then_close(shim, line):
    reply = converse(shim.address, line + b"\n" + CREATE)
    assert error_text(reply).startswith("malformed length line")


def test_too_many_digits_are_refused_before_any_newline(shim):
    with connect(shim.address, timeout=1.0) as connection:  # well within the idle timeout
        connection.sendall(b"1" * 21)
        assert error_text(read_to_end(connection)) == "length line longer than 20 characters"


def test_length_over_the_size_limit_is_refused_without_reading_the_body(shim):
    with connect(shim.address, timeout=1.0) as connection:
        connection.sendall(b"%d\n" % (SMALL_BODY_LIMIT + 1))
        reply = read_to_end(connection)
    assert error_text(reply) == f"request is larger than the limit of {SMALL_BODY_LIMIT} bytes"


@pytest.mark.parametrize("sent", [b"", b"4", b"47\n<create>"], ids=["nothing", "length", "body"])
def test_stalled_request_gets_error_after_the_idle_timeout(shim, sent):
    started = time.monotonic()
    with connect(shim.address) as connection:
        connection.sendall(sent)
        reply = read_to_end(connection)
    assert error_text(reply) == "request stalled: no bytes for 2 s"
    assert 1.9 < time.monotonic() - started < 5


def test_client_closing_mid_body_gets_error_if_it_still_reads(shim):
    with connect(shim.address) as connection:
        connection.sendall(b"47\n<create>")
        connection.shutdown(socket.SHUT_WR)
        reply = read_to_end(connection)
    assert error_text(reply) == "connection closed after 8 of the 47 bytes announced"


def test_client_vanishing_mid_request_or_before_its_reply_leaves_the_shim_serving(shim, engine):
    mid_request = connect(shim.address)
    send_in_parts(mid_request, b"47\n<create>")
    reset(mid_request)
    before_reply = connect(shim.address)
    send_in_parts(before_reply, framed(CREATE))
    reset(before_reply)
    other = CREATE.replace(b'"1"', b'"2"')
    assert children(converse(shim.address, framed(other))) == [("created", {"id": "2"}, None)]


def test_reads_pass_through_unchanged(shim, server, engine):
    setup = (
        b'<create><account id="1" balance="100"/><symbol sym="X"><account id="1">10</account>'
        b"</symbol></create>",
        b'<transactions id="1"><order sym="X" amount="-4" limit="2.50"/>'
        b'<order sym="X" amount="3" limit="2"/></transactions>',
    )
    for body in setup:
        converse(shim.address, framed(body))
    reads = (
        b'<transactions id="1"><book sym="X"/><account/><orders sym="X"/>'
        b'<trades sym="X" limit="0"/></transactions>'
    )
    reply = converse(shim.address, framed(reads))
    assert reply == requests.post(server, data=reads, timeout=30).content
    assert [tag for tag, _, _ in children(reply)] == ["book", "account", "orders", "error"]
