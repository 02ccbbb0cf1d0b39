"""A real gunicorn starting before its database, without one, and stopping under load."""

import http.client
import os
import signal
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import requests
from lxml import etree
from sqlalchemy import select

from app.local import cluster
from app.storage.schema import orders
from tests.web.servers import start_gunicorn

CLIENTS = 8
REPLIES_BEFORE_SIGTERM = 40
SYMBOL = '<symbol sym="LIFE"><account id="900">1</account></symbol>'
ACCOUNTS = "".join(f'<account id="{900 + client}" balance="1000000"/>' for client in range(CLIENTS))


def wait_for_log(gunicorn, text: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in gunicorn.log_text():
        assert gunicorn.process.poll() is None, gunicorn.log_text()
        assert time.monotonic() < deadline, f"no {text!r} in:\n{gunicorn.log_text()}"
        time.sleep(0.1)


def test_start_waits_for_a_database_that_comes_up_later(tmp_path):
    port = cluster.free_port()
    late = cluster.Cluster(tmp_path / "data", port)
    gunicorn = start_gunicorn(late.url(), tmp_path / "gunicorn.log", EXCHANGE_DB_WAIT_SECONDS="120")
    try:
        wait_for_log(gunicorn, "waiting for the database")
        late.ensure_running()
        gunicorn.wait_until_ready()
        assert "schema ready" in gunicorn.log_text()
    finally:
        gunicorn.stop()
        late.stop()


def test_start_without_a_database_exits_with_one_clear_line(tmp_path):
    url = f"postgresql://postgres@127.0.0.1:{cluster.free_port()}/exchange"
    gunicorn = start_gunicorn(url, tmp_path / "gunicorn.log", EXCHANGE_DB_WAIT_SECONDS="2")
    assert gunicorn.process.wait(60) != 0
    log = gunicorn.log_text()
    assert "cannot start: the database at postgresql+psycopg2://postgres@127.0.0.1:" in log
    assert "did not answer within 2 s: connection to server" in log
    assert "Traceback" not in log


def test_start_on_an_address_in_use_exits_with_one_clear_line(server, tmp_path):
    """The workers share their port with SO_REUSEPORT; a second server must not join in."""
    port = urlsplit(server).port
    gunicorn = start_gunicorn("postgresql://unused", tmp_path / "gunicorn.log", port=port)
    assert gunicorn.process.wait(60) == 1
    log = gunicorn.log_text()
    assert f"cannot start: 127.0.0.1:{port} is in use: Address already in use" in log
    assert "Traceback" not in log
    assert requests.get(f"{server}/livez", timeout=5).status_code == 200


class Trader(threading.Thread):
    """Places orders one connection each until the server stops answering."""

    def __init__(self, url: str, account: str):
        super().__init__()
        self.address = urlsplit(url)
        self.body = (
            f'<transactions id="{account}"><order sym="LIFE" amount="1" limit="1"/></transactions>'
        ).encode()
        self.replied: list[tuple[int, float]] = []  # order id, when the reply came

    def run(self) -> None:
        while True:
            connection = http.client.HTTPConnection(
                self.address.hostname, self.address.port, timeout=120
            )
            try:
                connection.request("POST", "/", body=self.body)
                reply = connection.getresponse().read()
            except OSError:
                return
            finally:
                connection.close()
            [result] = etree.fromstring(reply)
            assert result.tag == "opened", reply
            self.replied.append((int(result.get("id")), time.monotonic()))


def test_sigterm_lets_requests_in_flight_finish(engine, database_url, tmp_path):
    gunicorn = start_gunicorn(database_url, tmp_path / "gunicorn.log")
    try:
        gunicorn.wait_until_ready()
        setup = requests.post(gunicorn.url, data=f"<create>{ACCOUNTS}{SYMBOL}</create>", timeout=60)
        assert setup.status_code == 200
        traders = [Trader(gunicorn.url, str(900 + client)) for client in range(CLIENTS)]
        for trader in traders:
            trader.start()
        while sum(len(trader.replied) for trader in traders) < REPLIES_BEFORE_SIGTERM:
            assert all(trader.is_alive() for trader in traders), gunicorn.log_text()
            time.sleep(0.01)
        signalled = time.monotonic()
    finally:
        exit_status = gunicorn.stop()
    assert exit_status == 0
    for trader in traders:
        trader.join(timeout=120)

    replied = {order for trader in traders for order, _ in trader.replied}
    with engine.connect() as connection:
        stored = set(connection.scalars(select(orders.c.id).where(orders.c.symbol == "LIFE")))
    assert stored == replied, "an order was stored without a reply, or replied but not stored"
    assert any(when > signalled for trader in traders for _, when in trader.replied), (
        "no request in flight at SIGTERM got its reply"
    )


def test_sigterm_closes_connections_waiting_for_a_next_request_at_once(
    database_url, schema_engine, tmp_path
):
    gunicorn = start_gunicorn(database_url, tmp_path / "gunicorn.log", EXCHANGE_WORKERS="1")
    try:
        gunicorn.wait_until_ready()
        address = urlsplit(gunicorn.url)
        idle = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
        idle.request("GET", "/livez")
        assert idle.getresponse().read()
        signalled = time.monotonic()
    finally:
        exit_status = gunicorn.stop()
    assert idle.sock.recv(1) == b"", "the idle connection was not closed"
    assert exit_status == 0 and time.monotonic() - signalled < 5
    assert "Traceback" not in gunicorn.log_text()


def live_gauge_pids(directory: Path) -> set[int]:
    return {int(path.stem.rsplit("_", 1)[1]) for path in directory.glob("gauge_livesum_*.db")}


def wait_for(condition, gunicorn, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert gunicorn.process.poll() is None, gunicorn.log_text()
        assert time.monotonic() < deadline, gunicorn.log_text()
        time.sleep(0.1)


def test_metrics_of_an_earlier_run_are_wiped_at_start(database_url, schema_engine, tmp_path):
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    stale = metrics / "counter_1.db"
    stale.write_bytes(b"left over")
    gunicorn = start_gunicorn(
        database_url, tmp_path / "gunicorn.log", PROMETHEUS_MULTIPROC_DIR=str(metrics)
    )
    try:
        gunicorn.wait_until_ready()
        assert not stale.exists()
    finally:
        gunicorn.stop()


def test_a_dead_workers_gauges_are_dropped(database_url, schema_engine, tmp_path):
    metrics = tmp_path / "metrics"
    gunicorn = start_gunicorn(
        database_url, tmp_path / "gunicorn.log", PROMETHEUS_MULTIPROC_DIR=str(metrics)
    )
    try:
        gunicorn.wait_until_ready()
        wait_for(lambda: len(live_gauge_pids(metrics)) == 2, gunicorn)
        victim, survivor = sorted(live_gauge_pids(metrics))
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: victim not in live_gauge_pids(metrics), gunicorn)
        wait_for(lambda: len(live_gauge_pids(metrics)) == 2, gunicorn)
        assert survivor in live_gauge_pids(metrics)
    finally:
        gunicorn.stop()


def test_a_worker_told_to_stop_while_it_boots_stops_once_booted(database_url, tmp_path):
    """A SIGTERM reaching a worker before gunicorn has set its handlers was lost, and a
    stopping server waited for its graceful timeout (30 s) before killing it."""
    gunicorn = start_gunicorn(database_url, tmp_path / "gunicorn.log", EXCHANGE_WORKERS="1")
    try:
        deadline = time.monotonic() + 60
        while not (booting := gunicorn.worker_pids()):
            assert time.monotonic() < deadline, gunicorn.log_text()
            time.sleep(0.005)
        [worker] = booting
        os.kill(worker, signal.SIGTERM)
        wait_for(lambda: worker not in gunicorn.worker_pids(), gunicorn, timeout=10)
    finally:
        gunicorn.stop()
