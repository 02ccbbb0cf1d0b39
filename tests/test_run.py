"""`make run`: the launcher starts the web tier and the shim together and stops both on Ctrl-C."""

import os
import signal
import subprocess
import sys
import time

import pytest

from app.run import web_url
from app.storage.cluster import PROJECT, free_port
from tests.shim.wire import converse, framed


@pytest.mark.parametrize(
    ("bind", "url"),
    [
        ("127.0.0.1:8000", "http://127.0.0.1:8000/"),
        ("0.0.0.0:9000", "http://127.0.0.1:9000/"),
        ("10.1.2.3:8080", "http://10.1.2.3:8080/"),
    ],
)
def test_shim_follows_the_web_tiers_bind_address(bind, url):
    assert web_url({"EXCHANGE_BIND": bind}) == url


def _ask_over_tcp(port: int, document: bytes, timeout: float = 60) -> bytes:
    """The reply to `document`, asked again until the shim has a service to answer it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            reply = converse(("127.0.0.1", port), framed(document))
            if b"<error>" not in reply or time.monotonic() > deadline:
                return reply
        except OSError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.3)


def test_launcher_serves_tcp_through_the_web_tier_and_stops_on_ctrl_c(database_url, schema_engine):
    shim_port = free_port()
    environment = dict(
        os.environ,
        DATABASE_URL=database_url,
        EXCHANGE_BIND=f"127.0.0.1:{free_port()}",
        EXCHANGE_WORKERS="1",
        EXCHANGE_SHIM_HOST="127.0.0.1",
        EXCHANGE_SHIM_PORT=str(shim_port),
    )
    environment.pop("EXCHANGE_SHIM_UPSTREAM", None)
    launcher = subprocess.Popen([sys.executable, "-m", "app.run"], cwd=PROJECT, env=environment)
    try:
        reply = _ask_over_tcp(shim_port, b'<create><account id="4242" balance="1"/></create>')
        assert b'<created id="4242"/>' in reply
    finally:
        launcher.send_signal(signal.SIGINT)
        assert launcher.wait(timeout=60) == 0
