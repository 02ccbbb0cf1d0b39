"""The service down, stuck or back again, and the shim's own shutdown."""

import socket
import time

import pytest

from app.local.cluster import free_port
from tests.shim.processes import echo_service, running_shim
from tests.shim.wire import connect, converse, error_text, framed, read_framed_reply, read_to_end

REQUEST = b"<create/>"


def test_service_down_or_stuck_gets_an_error_reply_and_the_shim_recovers_when_it_is_back():
    port = free_port()
    with running_shim(f"http://127.0.0.1:{port}/", upstream_timeout=1.0) as shim:
        started = time.monotonic()
        assert error_text(converse(shim.address, framed(REQUEST))).startswith(
            "service unavailable: "
        )
        assert time.monotonic() - started < 1.0

        with socket.create_server(("127.0.0.1", port)):  # accepts connections, never answers
            started = time.monotonic()
            reply = converse(shim.address, framed(REQUEST))
            assert error_text(reply) == "service unavailable: no reply within 1 s"
            assert 0.9 < time.monotonic() - started < 3

        with echo_service(port):
            assert converse(shim.address, framed(REQUEST)) == REQUEST


def test_shutdown_finishes_the_request_in_flight_and_refuses_new_connections():
    with echo_service(free_port(), delay=1.0) as upstream, running_shim(upstream) as shim:
        with connect(shim.address) as connection:
            connection.sendall(framed(REQUEST))
            time.sleep(0.3)  # the request now waits on the slow service
            stopping = time.monotonic()
            shim.process.terminate()
            assert read_to_end(connection) == REQUEST
        assert shim.process.wait(5) == 0
        assert time.monotonic() - stopping < 3
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(shim.address, timeout=1)


def test_shutdown_closes_connections_idle_between_requests_at_once():
    with (
        echo_service(free_port()) as upstream,
        running_shim(upstream, "--keep-open", "--reply-length", idle_timeout=30) as shim,
        connect(shim.address) as connection,
        connection.makefile("rb") as stream,
    ):
        connection.sendall(framed(REQUEST))
        assert read_framed_reply(stream) == REQUEST
        stopping = time.monotonic()
        assert shim.stop() == 0
        assert stream.read() == b""
        assert time.monotonic() - stopping < 5
