"""A shim in a subprocess, started as `make run` starts it, and a stand-in for the service."""

import contextlib
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from app.local.cluster import PROJECT, free_port
from app.run import SHIM_COMMAND
from tests.processes import stop_gracefully

START_TIMEOUT = 15.0
STOP_TIMEOUT = 15.0


@dataclass
class ShimProcess:
    address: tuple[str, int]
    process: subprocess.Popen
    log: Path | None = None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        return stop_gracefully(self.process, timeout)


@contextlib.contextmanager
def running_shim(
    upstream: str,
    *flags: str,
    idle_timeout: float = 2.0,
    upstream_timeout: float = 5.0,
    log: Path | None = None,
):
    """A shim serving until the block ends; its stderr goes to `log` when given, else the test's."""
    address = ("127.0.0.1", free_port())
    command = [
        *SHIM_COMMAND,
        "--host",
        address[0],
        "--port",
        str(address[1]),
        "--upstream",
        upstream,
        "--idle-timeout",
        str(idle_timeout),
        "--upstream-timeout",
        str(upstream_timeout),
        *flags,
    ]
    with log.open("ab") if log else contextlib.nullcontext() as output:
        shim = ShimProcess(address, subprocess.Popen(command, cwd=PROJECT, stderr=output), log)
    try:
        _wait_until_listening(shim)
        yield shim
    finally:
        if shim.process.poll() is None:
            shim.stop()


def _wait_until_listening(shim: ShimProcess) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and shim.process.poll() is None:
        try:
            socket.create_connection(shim.address, timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    shim.process.kill()
    raise RuntimeError(f"the shim did not listen on {shim.address} within {START_TIMEOUT} s")


class _EchoHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the service's gunicorn workers
    disable_nagle_algorithm = True  # headers and body are separate writes

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        time.sleep(self.server.delay)
        self.send_response(200)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        pass


class _ScriptedHandler(BaseHTTPRequestHandler):
    """Reads the request, then answers with the server's `status` and `body`, or, with no
    status, closes the connection without a word: a service that died while serving it."""

    protocol_version = "HTTP/1.1"

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        if self.server.status is None:
            self.close_connection = True
            return
        self.send_response(self.server.status)
        self.send_header("Content-Type", self.server.content_type)
        self.send_header("Content-Length", str(len(self.server.body)))
        self.end_headers()
        self.wfile.write(self.server.body)

    def log_message(self, format, *args):
        pass


class _EchoServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # the default of 5 would drop a pool's connections at once


@contextlib.contextmanager
def echo_service(port: int, delay: float = 0.0):
    """A stand-in for the service that answers each request with its own body, after `delay`."""
    with _serving(port, _EchoHandler, delay=delay) as url:
        yield url


@contextlib.contextmanager
def scripted_service(
    port: int,
    status: int | None,
    body: bytes = b"",
    content_type: str = "application/xml",
):
    """A stand-in for the service that answers every request alike (see _ScriptedHandler)."""
    with _serving(
        port, _ScriptedHandler, status=status, body=body, content_type=content_type
    ) as url:
        yield url


@contextlib.contextmanager
def _serving(port: int, handler, **settings):
    server = _EchoServer(("127.0.0.1", port), handler)
    for name, value in settings.items():
        setattr(server, name, value)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.shutdown()
        server.server_close()
