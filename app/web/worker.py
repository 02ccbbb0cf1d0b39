"""The gunicorn worker: a slow or idle client costs a greenlet, never a request slot.

gunicorn's threaded worker reads each request on one of its few threads, so
a handful of clients sending their headers a line a second held every
thread, and the exchange stopped answering anyone. Here every connection has
a greenlet of its own (gevent; psycopg2 made cooperative by app/storage/waits.py), and:

- a request is read whole, headers and body, within `request_timeout` of its
  first byte, before the application runs it in one of the worker's
  `concurrency` slots, in arrival order (app/web/admission.py); one that
  does not arrive in time is answered 408 and its connection closed;
- once arrived, a request has `deadline` seconds, its wait for a slot
  included; past it, nothing more of it runs (its items are answered
  `deadline passed: not applied`), and no wait for the database outlasts
  it. Health checks and metrics take no slot: they answer at once;
- a body cut short (the client stopped sending before its declared length or
  its last chunk), or headers cut short by a client that half-closed, is
  answered 400 and never run;
- a body larger than `max_body_bytes` is refused with 413 as soon as its
  length or a chunk's size says so, unread; a client that waits for
  `100 Continue` before sending its body (`Expect: 100-continue`) gets it
  once the headers are admitted;
- a reply the client does not take within the same time closes it too;
- a connection silent between requests is closed after gunicorn's
  `keepalive` seconds, without a word;
- beyond `max_connections` open at once, or `max_connections_per_client`
  from one address, a new connection is answered 503 and closed. Both caps
  are per worker process;
- a request gunicorn cannot parse gets the XML error document, like every
  other reply, instead of gunicorn's HTML page;
- a market-data stream (app/web/stream.py) is a connection held open: it
  counts against the connection caps like any other, leaves its request slot
  once subscribed, is written as its events come rather than gathered, and
  closes its connection when it ends, or its client does; at shutdown every
  stream ends at once. Its kernel send buffer is as small as its own buffer
  of events (EXCHANGE_STREAM_BUFFER_BYTES), not autotuned up to megabytes:
  a client that stops reading holds little memory, and is dropped soon.

Each cut-off is counted in the metrics and logged as a warning naming the
client, at most once per address every 10 seconds (app/ratelimit.py)."""

import contextlib
import errno
import gc
import io
import logging
import os
import signal
import socket
import time
import weakref
from collections import Counter
from http import HTTPStatus

import gevent
import gunicorn.util
from gunicorn.http.body import ChunkedReader, LengthReader
from gunicorn.http.errors import NoMoreData
from gunicorn.workers.ggevent import GeventWorker

from app import deadline
from app.config import Config
from app.endpoints import UNQUEUED_PATHS
from app.protocol import DocumentTooLarge, render_error
from app.ratelimit import RateLimitedWarnings, client_host
from app.storage import waits
from app.web import stages
from app.web.admission import Slots

log = logging.getLogger(__name__)

LINGER_S = 1.0
GC_THRESHOLDS = (50_000, 50, 100)  # see _collect_garbage_seldom
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGQUIT}


def hold_stop_signals_across_forks() -> None:
    """In gunicorn's master: a stop signal sent to a worker that cannot handle one yet waits.

    A worker starts with the master's handlers, and until gunicorn installs its
    own (after gevent's patching, a good part of its boot) a SIGTERM went to the
    master's handler in the worker and was lost: the worker served on until the
    master killed it, `graceful_timeout` later. So the stop signals are blocked
    from just before each fork, in the master until the fork is done, in the
    worker until `init_process` has a handler for them; one sent meanwhile is
    delivered then. (A master that gunicorn re-executes on SIGUSR2 inherits the block
    from its fork: it lifts it here, at its own start.)
    """
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    os.register_at_fork(
        before=lambda: signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS),
        after_in_parent=lambda: signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS),
    )


class RequestTimeout(Exception):
    """The request did not arrive whole within its deadline: answered 408."""


class IncompleteBody(Exception):
    """The client stopped sending before its body was whole: answered 400, never run."""


class IncompleteHeaders(IncompleteBody):
    """The client closed its side before its headers ended: answered 400 too, where the
    socket still takes a reply (it half-closed), rather than dropped without a word."""


class ReplyTimeout(BrokenPipeError):
    """The client did not take its reply in time: closed like a client that went away."""


class ClientSocket:
    """A client's socket that times each request: idle until its first byte, then a deadline.

    gunicorn's parser and its reply writer see an ordinary socket; a read or
    a write that would outlast the deadline ends instead. Silence between
    requests reads as the client closing, which ends the connection quietly.
    """

    def __init__(self, sock, host: str, worker: "ExchangeWorker"):
        self._sock = sock
        self.host = host
        self._worker = worker
        self._deadline: float | None = None  # while a request is arriving
        self._in_headers = False  # its headers are arriving
        self._ended = False  # by end_idle_wait
        self.held_open = False  # by a stream: the connection closes when it ends
        # Where the request being served spent its time (app/web/stages.py).
        self.first_byte_at = self.arrived_at = 0.0
        self.stages: dict[str, float] | None = None  # once the application has run
        self.sending_s = 0.0

    def recv(self, size: int) -> bytes:
        if self._deadline is not None:
            try:
                data = self._until(self._deadline, self._sock.recv, size)
            except TimeoutError:
                raise RequestTimeout from None
            if not data and self._in_headers:
                raise IncompleteHeaders("request incomplete: the connection closed in its headers")
            return data
        worker = self._worker
        if not worker.alive:  # stopping: no next request (see `end_idle_wait`)
            return b""
        worker.idle.add(self)
        try:
            data = self._until(time.monotonic() + worker.cfg.keepalive, self._sock.recv, size)
        except TimeoutError:
            return b""
        except OSError:
            if self._ended:  # gevent's shutdown cancels the wait with an error: read it as EOF
                return b""
            raise
        finally:
            worker.idle.discard(self)
        if data:
            self.first_byte_at = time.monotonic()
            self._deadline = self.first_byte_at + worker.request_timeout
            self._in_headers = True
            worker.metrics.ARRIVING_REQUESTS.inc()
        return data

    def headers_arrived(self) -> None:
        self._in_headers = False

    def sendall(self, data: bytes) -> None:
        started = time.monotonic()
        try:
            self._until(started + self._worker.request_timeout, self._sock.sendall, data)
            self.sending_s += time.monotonic() - started
        except TimeoutError:
            self._worker.cut_off(self.host, "reply")
            raise ReplyTimeout(errno.EPIPE, "reply not taken in time") from None

    def arrived(self) -> None:
        """The request is in whole (or never will be): its deadline no longer runs."""
        if self._deadline is not None:
            self._deadline = None
            self.arrived_at = time.monotonic()
            self._worker.metrics.ARRIVING_REQUESTS.dec()

    def end_idle_wait(self) -> None:
        """Make a wait for the next request end as if the client had closed.

        A connection that starts to wait only once the worker is stopping (its
        reply was still being written) ends at once in `recv` instead.
        """
        self._ended = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RD)

    def hang_up(self) -> None:
        """Close the connection at once: a write the client does not take fails now."""
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)

    def _until(self, deadline: float, operation, argument):
        seconds = deadline - time.monotonic()
        if seconds <= 0:
            raise TimeoutError
        self._sock.settimeout(seconds)
        try:
            return operation(argument)
        finally:
            self._sock.settimeout(None)

    @property
    def raw(self) -> socket.socket:
        return self._sock

    def __getattr__(self, name):
        return getattr(self._sock, name)


class ExchangeWorker(GeventWorker):
    def patch(self) -> None:
        super().patch()
        waits.install()

    def init_process(self) -> None:
        """A stop asked for while the worker boots stops it once booted (see
        `hold_stop_signals_across_forks`)."""
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._stop_once_booted)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        config = Config.from_env()
        self.request_timeout = config.request_timeout
        self._max_connections = config.max_connections
        self._max_per_client = config.max_connections_per_client
        self._max_body_bytes = config.max_body_bytes
        self._stream_buffer_bytes = config.stream_buffer_bytes
        self._deadline_s = config.deadline
        self._slots = Slots(self.cfg.threads)
        self._read_slots = Slots(config.read_concurrency)
        self._open: Counter[str] = Counter()
        self.idle: set[ClientSocket] = set()  # waiting for their next request
        self.streams: weakref.WeakSet = weakref.WeakSet()  # held open, to end at shutdown
        self._warnings = RateLimitedWarnings(log)
        gunicorn.util.write_error = _write_error
        super().init_process()

    def load_wsgi(self) -> None:
        """The application runs in one of the worker's slots, in arrival order, by its deadline.

        GET requests (the read-only resources) have slots of their own: they
        take no locks and one statement, and would otherwise queue behind the
        orders; health checks and metrics take none. A request whose deadline
        passes before it gets a slot runs without one: the exchange then runs
        nothing of it, and it is answered at once. A stream leaves its slot
        once subscribed and is written as it goes, on a connection held open,
        with no deadline. The metrics are imported here, after the fork and
        once the worker handles signals: prometheus_client gives each process
        files of its own.
        """
        from app.web import metrics
        from app.web.stream import EventStream

        self.metrics = metrics
        super().load_wsgi()
        _collect_garbage_seldom()
        application = self.wsgi

        def in_turn(environ, start_response):
            if environ["PATH_INFO"] in UNQUEUED_PATHS:
                return list(application(environ, start_response))
            slots = self._read_slots if environ["REQUEST_METHOD"] == "GET" else self._slots
            connection = environ["gunicorn.socket"]
            with deadline.within(self._deadline_s), _slot(slots), stages.timed(connection):
                body = application(environ, start_response)
                if not isinstance(body, EventStream):
                    return list(body)
            connection.held_open = True
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self._stream_buffer_bytes)
            body.hold(connection.hang_up)
            gevent.spawn(_end_when_client_leaves, connection.raw, body)
            self.streams.add(body)
            return body

        self.wsgi = in_turn

    def _stop_once_booted(self, signum, frame) -> None:
        self.alive = False

    def timeout_ctx(self):
        """Reads are timed by the ClientSocket, from a request's first byte."""
        return contextlib.nullcontext()

    def handle_exit(self, sig, frame) -> None:
        """On SIGTERM, connections waiting for a next request close at once, not when idle long,
        and streams end (their clients reconnect to another worker)."""
        super().handle_exit(sig, frame)
        for waiting in list(self.idle):
            waiting.end_idle_wait()
        for stream in list(self.streams):
            stream.end("shutdown")

    def handle(self, listener, client, addr) -> None:
        host = client_host(addr)
        refusal = self._refusal(host)
        if refusal is not None:
            self.metrics.REFUSED_CONNECTIONS.labels(refusal).inc()
            why = f"connection refused: {refusal.replace('_', ' ')}"
            self._warnings.warn(host, why)
            _answer(client, 503, why)
            client.close()
            return
        self._open[host] += 1
        self.metrics.OPEN_CONNECTIONS.inc()
        timed = ClientSocket(client, host, self)
        try:
            super().handle(listener, timed, addr)
        finally:
            timed.arrived()
            self.metrics.OPEN_CONNECTIONS.dec()
            self._open[host] -= 1
            if not self._open[host]:
                del self._open[host]

    def handle_request(self, listener_name, req, sock, addr) -> bool:
        """Read the body within the request's deadline; the application then reads memory.
        Once the reply is written, where the request's time went is recorded."""
        sock.headers_arrived()
        self._read_body(req, sock)
        sock.arrived()
        sock.stages, sock.sending_s = None, 0.0
        try:
            keep_alive = super().handle_request(listener_name, req, sock, addr)
        finally:  # a connection closed after its reply ends by StopIteration
            if sock.stages is not None and not sock.held_open:
                stages.record(self.metrics.STAGE_SECONDS, sock.stages, replying=sock.sending_s)
        return keep_alive and not sock.held_open

    def handle_error(self, req, client, addr, exc) -> None:
        if isinstance(exc, RequestTimeout):
            self.cut_off(client.host, "request")
            _answer(client.raw, 408, f"request not complete within {self.request_timeout:g} s")
        elif isinstance(exc, IncompleteBody):
            self.metrics.REQUESTS.labels("unparsed", "bad_request").inc()
            self._warnings.warn(client.host, str(exc))
            _answer(client.raw, 400, str(exc))
        elif isinstance(exc, DocumentTooLarge):
            self.metrics.REQUESTS.labels("unparsed", "too_large").inc()
            _answer(client.raw, 413, str(exc))
        else:
            super().handle_error(req, client, addr, exc)

    def cut_off(self, host: str, stage: str) -> None:
        """Count and warn about a client too slow to send its request or take its reply."""
        self.metrics.TIMEOUTS.labels(stage).inc()
        deadline = f"{self.request_timeout:g} s"
        self._warnings.warn(host, f"cut off: {stage} not complete within {deadline}")

    def _refusal(self, host: str) -> str | None:
        if sum(self._open.values()) >= self._max_connections:
            return "too_many_connections"
        if self._open[host] >= self._max_per_client:
            return "too_many_from_client"
        return None

    def _read_body(self, req, sock: ClientSocket) -> None:
        """The whole body, up to one byte past the limit, which the application then refuses.

        A body known to be too large is not read at all, and its connection
        closes after the reply; a chunk whose size passes the limit ends the
        request at once (`DocumentTooLarge`). A request with neither a length
        nor chunks has no body (RFC 9112 section 6.3). A body cut short, the
        client having stopped sending before its end, is never run.
        """
        reader = req.body.reader
        if isinstance(reader, LengthReader) and reader.length > self._max_body_bytes:
            req.must_close = True
            req._expected_100_continue = False  # refused: the client need not send it
            return
        if not isinstance(reader, LengthReader | ChunkedReader):
            req.body = io.BytesIO(b"")
            return
        if req._expected_100_continue:  # answered once, here, before the body is read
            req._expected_100_continue = False
            sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        if isinstance(reader, ChunkedReader):
            _refuse_chunks_past(reader, self._max_body_bytes)
        declared = reader.length if isinstance(reader, LengthReader) else None
        try:
            body = req.body.read(self._max_body_bytes + 1)
        except NoMoreData:
            raise IncompleteBody(
                "request body incomplete: it ended before its last chunk"
            ) from None
        if declared is not None and len(body) < declared:
            raise IncompleteBody(
                f"request body incomplete: {len(body)} of its {declared} bytes arrived"
            )
        if len(body) > self._max_body_bytes:
            req.must_close = True
        req.body = io.BytesIO(body)


def _end_when_client_leaves(sock: socket.socket, stream) -> None:
    """A stream's client sends nothing more: once it closes its end, the stream ends at once,
    not at its next write (which the kernel may still accept)."""
    with contextlib.suppress(OSError):
        while sock.recv(4096):
            pass
    stream.end("left")


def _collect_garbage_seldom() -> None:
    """Spare requests most of Python's collections of garbage: they stall every greenlet.

    What loading made (modules, prepared statements, the app) lives as long as
    the worker: frozen, it is never scanned again. A request's own objects die
    with it by reference counting, so each generation can grow far past
    Python's defaults (700, 10, 10) before it is scanned. Measured A/B in one
    `make bench` run: p99 over HTTP 0.87 × (90 -> 80 ms), throughput 1.04 ×.
    """
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _refuse_chunks_past(reader: ChunkedReader, limit: int) -> None:
    """Make the reader raise DocumentTooLarge as soon as the chunk sizes read add up past
    `limit`, instead of waiting for the chunk's bytes (until the request's deadline)."""
    parse_size = reader.parse_chunk_size
    announced = 0

    def checked(unreader, data=None):
        nonlocal announced
        size, rest = parse_size(unreader, data)
        announced += size
        if announced > limit:
            raise DocumentTooLarge(limit)
        return size, rest

    reader.parse_chunk_size = checked


@contextlib.contextmanager
def _slot(slots: Slots):
    """A slot if one frees before the deadline; else none (the request then runs nothing)."""
    taken = slots.acquire(timeout=max(deadline.remaining(), 0))
    try:
        yield
    finally:
        if taken:
            slots.release()


def _write_error(sock, status: int, reason: str, message: str) -> None:
    """gunicorn's reply to a request it cannot parse (a bad request line, header
    or chunk; a line or headers too long): the XML error document every other
    reply of the service uses, where gunicorn would write an HTML page."""
    _answer(getattr(sock, "raw", sock), status, message or reason)


def _answer(sock: socket.socket, status: int, why: str) -> None:
    """Reply with the XML error document, then linger a moment before the caller closes.

    Closing a socket with unread bytes in it (the rest of a slow request) makes
    the kernel send a reset, which can destroy the reply before the client reads
    it; so the reply goes out, the sending side is shut, and what the client
    still sends is read and dropped for at most LINGER_S.
    """
    body = render_error(why)
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nContent-Type: application/xml\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    deadline = time.monotonic() + LINGER_S
    with contextlib.suppress(OSError):
        sock.settimeout(LINGER_S)
        sock.sendall(head.encode("ascii") + body)
        sock.shutdown(socket.SHUT_WR)
        while sock.recv(65536) and (seconds := deadline - time.monotonic()) > 0:
            sock.settimeout(seconds)
