"""`book --watch` and `trades --follow`: the client follows the symbol's stream, and comes back
after a break with the trades it missed, none twice."""

import os
import re
import signal
import subprocess
import sys
import threading
import time

from app.client.cli import main
from app.client.reads import CLEAR_SCREEN
from app.local.cluster import PROJECT
from tests.web.servers import post_while_restarting

OPEN = (
    '<create><account id="1" balance="1000000"/><account id="2" balance="0"/>'
    '<symbol sym="LIVE"><account id="2">1000</account></symbol></create>'
)


def trade(url: str, price: str) -> None:
    post_while_restarting(
        url, f'<transactions id="2"><order sym="LIVE" amount="-1" limit="{price}"/></transactions>'
    )
    post_while_restarting(
        url, f'<transactions id="1"><order sym="LIVE" amount="1" limit="{price}"/></transactions>'
    )


class Client:
    """`python -m app.client ...` running, its output gathered as it comes."""

    def __init__(self, *args: str):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app.client", *args],
            cwd=PROJECT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        threading.Thread(target=self._gather, daemon=True).start()

    def _gather(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, done, timeout: float = 10.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while not done(self.lines):
            assert time.monotonic() < deadline, f"the client printed {self.lines}"
            time.sleep(0.05)
        return self.lines

    def interrupt(self) -> str:
        """Ctrl-C; what it printed on stderr, once it has exited with status 0."""
        self.process.send_signal(signal.SIGINT)
        _, err = self.process.communicate(timeout=10)
        assert self.process.returncode == 0, err
        return err


def prices(lines: list[str]) -> list[str]:
    """The prices of the trade lines printed: `TIME  shares  price`."""
    return [line.split()[-1] for line in lines if re.match(r"\d{4}-\d\d-\d\d ", line)]


def test_trades_follow_prints_the_last_trades_then_each_new_one_and_resumes_after_a_drop(
    one_worker_server, engine
):
    url = one_worker_server.url
    post_while_restarting(url, OPEN)
    for price in ("10", "11", "12"):
        trade(url, price)
    following = Client("trades", "LIVE", "--follow", "--limit", "2", "--http", url)
    following.wait_for(lambda lines: prices(lines) == ["11", "12"])
    trade(url, "13")
    following.wait_for(lambda lines: prices(lines) == ["11", "12", "13"])
    [worker] = one_worker_server.worker_pids()
    os.kill(worker, signal.SIGTERM)  # the stream ends; gunicorn starts another worker
    trade(url, "14")
    trade(url, "15")
    lines = following.wait_for(lambda lines: len(prices(lines)) >= 5)
    time.sleep(0.5)  # time for a trade shown twice to show
    errors = following.interrupt()
    assert prices(lines) == ["11", "12", "13", "14", "15"]
    assert lines[:2] == ["LIVE, oldest first", "time (UTC)                 shares         price"]
    assert "stream broken" in errors


def test_book_watch_redraws_when_the_book_changes(server, engine):
    post_while_restarting(server, OPEN)
    watching = Client("book", "LIVE", "--watch", "--http", server)
    watching.wait_for(lambda lines: "LIVE: no open orders" in lines)
    post_while_restarting(
        server, '<transactions id="1"><order sym="LIVE" amount="3" limit="9.5"/></transactions>'
    )
    lines = watching.wait_for(lambda lines: "bid     9.5       3       1" in lines, timeout=2)
    watching.interrupt()
    assert any(
        line.startswith(CLEAR_SCREEN) and line.endswith("live  (Ctrl-C to stop)") for line in lines
    )


def test_following_an_unknown_symbol_is_a_clear_error(server, engine, capsys):
    assert main(["trades", "NOPE", "--follow", "--http", server]) == 1
    assert "no such symbol (HTTP 404)" in capsys.readouterr().err
