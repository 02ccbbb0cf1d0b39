"""The service down, stuck, dying or back again, and the shim's own shutdown."""

import socket
import time

import pytest

from app.local.cluster import free_port
from app.outcomes import Outcome, Unavailable, outcome_of
from app.protocol import render_error
from tests.shim.processes import echo_service, running_shim, scripted_service
from tests.shim.wire import connect, converse, error_text, framed, read_framed_reply, read_to_end

REQUEST = b"<create/>"
# What the service answers when its database failed every item: it says which kind.
SERVICE_503 = (
    b"<?xml version='1.0' encoding='UTF-8'?>\n<results>"
    b"<error>database unavailable: not applied</error>"
    b"<error>database unavailable: outcome unknown, it may have been applied</error></results>\n"
)


def opening(failure: Unavailable, why: str = "") -> str:
    """The failure's text up to and including the start of its detail."""
    return failure.text(why).removesuffix(")")


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
            assert error_text(reply) == Unavailable.SERVICE_AFTER_SENDING.text(
                "no reply within 1 s"
            )
            assert 0.9 < time.monotonic() - started < 3

        with echo_service(port):
            assert converse(shim.address, framed(REQUEST)) == REQUEST


def test_a_request_that_never_reached_the_service_is_not_applied():
    with running_shim(f"http://127.0.0.1:{free_port()}/") as shim:
        why = error_text(converse(shim.address, framed(REQUEST)))
    assert why.startswith(opening(Unavailable.SERVICE, "Cannot connect to host"))
    assert outcome_of(why) is Outcome.NOT_APPLIED


def test_a_connection_cut_after_the_request_was_sent_is_outcome_unknown():
    """The service may have run it before it died: the client must not take it as a failure."""
    with (
        scripted_service(free_port(), status=None) as upstream,
        running_shim(upstream) as shim,
    ):
        why = error_text(converse(shim.address, framed(REQUEST)))
    assert why.startswith(opening(Unavailable.SERVICE_AFTER_SENDING))
    assert outcome_of(why) is Outcome.UNKNOWN


def test_the_services_own_503_document_is_passed_on_as_it_is():
    with (
        scripted_service(free_port(), 503, SERVICE_503) as upstream,
        running_shim(upstream) as shim,
    ):
        assert converse(shim.address, framed(REQUEST)) == SERVICE_503


@pytest.mark.parametrize(
    ("status", "failure"),
    [(503, Unavailable.SERVICE), (502, Unavailable.SERVICE_AFTER_SENDING)],
    ids=["503-refused", "502-after-sending"],
)
def test_a_proxys_5xx_page_is_answered_with_its_kind(status, failure):
    """A 503 page refuses the request (no server to send it to); a 502 came after it was sent."""
    page = b"<html><body>Bad Gateway</body></html>"
    with (
        scripted_service(free_port(), status, page, "text/html") as upstream,
        running_shim(upstream) as shim,
    ):
        why = error_text(converse(shim.address, framed(REQUEST)))
    assert why.startswith(opening(failure, f"HTTP {status}"))


def test_a_4xx_document_is_passed_on_as_it_is():
    """The service's refusals (SPEC §8's 401, 403, 429 among them) reach the client untouched."""
    refusal = render_error("authentication failed")
    with (
        scripted_service(free_port(), 401, refusal) as upstream,
        running_shim(upstream) as shim,
    ):
        assert converse(shim.address, framed(REQUEST)) == refusal


def test_failed_requests_are_logged_once_for_the_outage_not_one_by_one(tmp_path):
    log = tmp_path / "shim.log"
    with running_shim(f"http://127.0.0.1:{free_port()}/", log=log) as shim:
        for _ in range(20):
            assert error_text(converse(shim.address, framed(REQUEST)))
    lines = [line for line in log.read_text().splitlines() if "unavailable" in line]
    assert len(lines) == 1, lines
    assert "; requests fail until it is back" in lines[0]


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
