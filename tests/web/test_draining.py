"""On SIGTERM with EXCHANGE_DRAIN_SECONDS, gunicorn fails readiness first, serves on, then stops."""

import signal
import time

import requests

from tests.web.servers import running_gunicorn

DRAIN_S = 2.0


def test_sigterm_fails_readiness_while_requests_are_still_served_then_stops(
    database_url, schema_engine, tmp_path
):
    with running_gunicorn(
        database_url, tmp_path / "gunicorn.log", EXCHANGE_DRAIN_SECONDS=str(DRAIN_S)
    ) as server:
        assert requests.get(f"{server.url}/readyz", timeout=5).status_code == 200
        server.process.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        deadline = sent + 5
        while (ready := requests.get(f"{server.url}/readyz", timeout=5)).status_code == 200:
            assert time.monotonic() < deadline, "readiness never failed"
            time.sleep(0.05)
        assert b'draining="yes"' in ready.content
        served = requests.post(f"{server.url}/", data=b"<create/>", timeout=5)
        assert served.status_code == 200 and time.monotonic() - sent < DRAIN_S
        assert server.process.wait(DRAIN_S + 10) == 0
        assert time.monotonic() - sent >= DRAIN_S
        assert "draining: /readyz answers 503 for 2 s, then stopping" in server.log_text()
