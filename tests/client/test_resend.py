"""The client sends each request under a key of its own and sends it again while not taken."""

import http.server
import socket
import threading
from contextlib import contextmanager

import pytest

from app.client.resend import NotTaken, keyed_http_sender, keyed_tcp_sender, not_taken
from app.local.cluster import free_port
from app.outcomes import Unavailable
from app.protocol import render_error

OPENED = b'<results><opened sym="X" amount="1" limit="1" id="7"/></results>'


def http_service_on(port: int):
    """A service answering 200 on `port`; the function that stops it."""
    context = http_service([], port)
    context.__enter__()
    return lambda: context.__exit__(None, None, None)


@contextmanager
def http_service(statuses: list[int], port: int = 0):
    """A service answering each POST with the next status (200 once none are left),
    and the idempotency keys it was sent."""
    keys = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            keys.append(self.headers["Idempotency-Key"])
            status = statuses.pop(0) if statuses else 200
            body = OPENED if status == 200 else render_error("request in progress")
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port or free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", keys
    finally:
        server.shutdown()
        server.server_close()


def test_a_request_not_taken_is_sent_again_under_the_same_key():
    with http_service([503, 409, 502]) as (url, keys):
        assert keyed_http_sender(url, timeout=5, resend_for=10)(b"<create/>") == OPENED
    assert len(keys) == 4 and len(set(keys)) == 1 and keys[0]


def test_every_request_has_a_key_of_its_own():
    with http_service([]) as (url, keys):
        send = keyed_http_sender(url, timeout=5, resend_for=10)
        send(b"<create/>")
        send(b"<create/>")
    assert len(set(keys)) == 2


def test_a_refused_connection_is_tried_again_until_time_is_up():
    port = free_port()
    send = keyed_http_sender(f"http://127.0.0.1:{port}/", timeout=1, resend_for=2.0)
    late = threading.Timer(0.5, lambda: started.append(http_service_on(port)))
    started = []
    late.start()
    try:
        assert send(b"<create/>") == OPENED
    finally:
        late.join()
        for stop in started:
            stop()


def test_errors_that_are_answers_are_not_sent_again():
    with http_service([400, 422]) as (url, keys):
        send = keyed_http_sender(url, timeout=5, resend_for=10)
        send(b"<create/>")
        send(b"<create/>")
    assert len(keys) == 2


def test_over_tcp_the_key_travels_in_the_prefix_and_a_refusal_is_read_from_the_body():
    received = []
    replies = [render_error(Unavailable.SERVICE.text("HTTP 503 Service Unavailable")), OPENED]
    with socket.create_server(("127.0.0.1", 0)) as listener:

        def serve():
            for reply in replies:
                connection, _ = listener.accept()
                with connection:
                    received.append(connection.recv(65536))
                    connection.sendall(reply)

        threading.Thread(target=serve, daemon=True).start()
        send = keyed_tcp_sender(listener.getsockname(), timeout=5, resend_for=10)
        assert send(b"<create/>") == OPENED
    assert received[0] == received[1]
    assert received[0].split(b"\n", 1)[1].startswith(b'<?exch-idempotency key="')


@pytest.mark.parametrize(
    "reply, resent",
    [
        (render_error("request in progress"), True),
        (render_error(Unavailable.SERVICE.text("Cannot connect")), True),
        (render_error(Unavailable.SERVICE_AFTER_SENDING.text("no reply within 30 s")), True),
        (
            b'<results><error id="1">database unavailable: not applied</error>'
            b'<error id="2">deadline passed: outcome unknown, it may have been applied</error>'
            b"</results>",
            True,
        ),
        (render_error("idempotency key reused with a different request"), False),
        (OPENED, False),
        (b"<results><error>request in progress</error><created/></results>", False),
        (
            b'<results><error id="1">database unavailable: not applied</error><created/></results>',
            False,
        ),
    ],
    ids=[
        "in-progress",
        "not-sent",
        "no-reply",
        "every-child-failed-for-the-database",
        "key-reused",
        "opened",
        "one-child-taken",
        "one-child-taken-one-failed",
    ],
)
def test_which_replies_over_tcp_mean_not_taken(reply, resent):
    assert not_taken(reply) is resent


def test_not_taken_is_what_the_client_reports_when_time_is_up():
    with http_service([503] * 100) as (url, _), pytest.raises(NotTaken, match="HTTP 503"):
        keyed_http_sender(url, timeout=5, resend_for=0.2)(b"<create/>")
