"""`make run` heals: each part it started killed with SIGKILL under load comes back by itself.

The launcher restarts the part (app/local/supervisor.py) while the others keep
serving; clients see only the errors of the part missing meanwhile, the books
balance afterwards and every acknowledged order exists.
"""

import os
import signal
import threading
import time
from contextlib import contextmanager

from lxml import etree

from app.local.cluster import Cluster, free_port
from app.storage.engine import database_engine
from tests.integrity.books import broken_rules, stored_order_ids
from tests.integrity.traffic import (
    ACCOUNTS,
    DATABASE_DOWN,
    OPENING,
    STRICT,
    SYMBOLS,
    TIMEOUT,
    Tolerance,
    background_load,
    post_create,
)
from tests.launcher import running_launcher
from tests.shim.wire import children, converse, framed

TCP_ACCOUNT = "99"
RESTING_BUY = (
    f'<transactions id="{TCP_ACCOUNT}"><order sym="{SYMBOLS[0]}" amount="1" limit="1"/>'
    "</transactions>"
).encode()
PAUSE_AFTER_CUT = 0.05


def test_postgresql_killed_under_load_is_restarted_while_the_service_waits(tmp_path):
    local = Cluster(tmp_path / "pgdata", free_port())
    try:
        with running_launcher(
            tmp_path / "run.log",
            DATABASE_URL=None,
            EXCHANGE_PGDATA=str(local.datadir),
            EXCHANGE_PGPORT=str(local.port),
        ) as launcher:
            launcher.wait_until_serving()
            post_create(launcher.web_url, ACCOUNTS, OPENING)
            with background_load(launcher.web_url, ACCOUNTS, SYMBOLS, DATABASE_DOWN) as load:
                load.wait_for_more("answered", 50)
                postmaster = int((local.datadir / "postmaster.pid").read_text().split()[0])
                os.kill(postmaster, signal.SIGKILL)
                launcher.wait_for_log("PostgreSQL is no longer running; restarting in")
                launcher.wait_for_log("PostgreSQL back after")
                load.wait_for_more("answered", 50)
            engine = database_engine(local.url(), pool_size=1)
            try:
                assert load.failures() == []
                assert broken_rules(engine) == []
                assert load.acknowledged_order_ids() <= stored_order_ids(engine)
            finally:
                engine.dispose()
            assert launcher.interrupt() == 0
    finally:
        local.stop()


def test_gunicorn_killed_under_load_is_restarted(database_url, engine, tmp_path):
    with running_launcher(tmp_path / "run.log", DATABASE_URL=database_url) as launcher:
        launcher.wait_until_serving()
        post_create(launcher.web_url, ACCOUNTS, OPENING)
        with background_load(
            launcher.web_url, ACCOUNTS, SYMBOLS, Tolerance(disconnects=True)
        ) as load:
            load.wait_for_more("answered", 50)
            master = launcher.child_pid("gunicorn")
            os.kill(master, signal.SIGKILL)
            launcher.wait_for_log("gunicorn was killed by SIGKILL; restarting in")
            launcher.wait_for_log("gunicorn back after")
            load.wait_for_more("answered", 50)
        assert launcher.child_pid("gunicorn") != master
        assert launcher.interrupt() == 0

    assert load.failures() == []
    assert broken_rules(engine) == []
    assert load.acknowledged_order_ids() <= stored_order_ids(engine)


def test_shim_killed_under_load_is_restarted_while_http_clients_notice_nothing(
    database_url, engine, tmp_path
):
    with running_launcher(tmp_path / "run.log", DATABASE_URL=database_url) as launcher:
        launcher.wait_until_serving()
        post_create(launcher.web_url, [*ACCOUNTS, TCP_ACCOUNT], OPENING)
        with (
            background_load(launcher.web_url, ACCOUNTS, SYMBOLS, STRICT) as load,
            buying_through_the_shim(launcher.shim_address) as tcp,
        ):
            tcp.wait_for_more_opened(20)
            os.kill(launcher.child_pid("app.shim"), signal.SIGKILL)
            launcher.wait_for_log("shim was killed by SIGKILL; restarting in")
            launcher.wait_for_log("shim back after")
            tcp.wait_for_more_opened(20)
            load.wait_for_more("answered", 50)
        assert launcher.interrupt() == 0

    assert load.failures() == [] and tcp.failures == []
    assert broken_rules(engine) == []
    assert load.acknowledged_order_ids() | set(tcp.opened) <= stored_order_ids(engine)


class ShimClient:
    """A client of the legacy protocol placing resting buys, one a connection. A connection
    the shim's death refuses or cuts is tried again; any other reply but `<opened>` fails."""

    def __init__(self, address: tuple[str, int]):
        self.address = address
        self.opened: list[int] = []
        self.failures: list[bytes] = []

    def buy_until(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                reply = converse(self.address, framed(RESTING_BUY))
            except OSError:
                reply = b""
            if not reply:  # refused or cut while the shim was down
                time.sleep(PAUSE_AFTER_CUT)
            elif (order_id := opened_id(reply)) is not None:
                self.opened.append(order_id)
            else:
                self.failures.append(reply)

    def wait_for_more_opened(self, more: int, timeout: float = TIMEOUT) -> None:
        target = len(self.opened) + more
        deadline = time.monotonic() + timeout
        while len(self.opened) < target:
            assert time.monotonic() < deadline, f"fewer than {more} more orders in {timeout} s"
            assert not self.failures, self.failures
            time.sleep(0.05)


@contextmanager
def buying_through_the_shim(address: tuple[str, int]):
    client = ShimClient(address)
    stop = threading.Event()
    thread = threading.Thread(target=client.buy_until, args=(stop,))
    thread.start()
    try:
        yield client
    finally:
        stop.set()
        thread.join()


def opened_id(reply: bytes) -> int | None:
    """The id of the order a reply to one `<order>` says was opened, if it says that."""
    try:
        [(tag, attributes, _)] = children(reply)
    except (ValueError, etree.XMLSyntaxError):
        return None
    return int(attributes["id"]) if tag == "opened" else None
