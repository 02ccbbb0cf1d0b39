"""Several hosts behind HAProxy lose and duplicate nothing when one dies, hangs or restarts.

Clients of our own (app/client/resend.py) trade through the balancer over
HTTP and the legacy port, each order under an idempotency key, sent again
while not taken. After each drill every order the clients placed was answered
exactly once: the orders in the database are exactly the orders the replies
opened, one each, and the ledger audit is clean.
"""

import os
import re
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal

import pytest
from sqlalchemy import select

from app.client.resend import keyed_http_sender, keyed_tcp_sender
from app.storage.schema import orders
from tests.cluster import running_cluster
from tests.integrity.books import Ledger, broken_rules
from tests.integrity.traffic import post_create

SERVER_TIMEOUT_S = 2  # HAProxy's wait for a host's reply: the bound on a hung host
LEASE_S = 1
ATTEMPT_TIMEOUT_S = 10  # each attempt's own; HAProxy's bound comes first
SYMBOL = "H"
OPENED = re.compile(rb'^<\?xml[^>]*\?>\s*<results><opened sym="H" [^>]*id="(\d+)"/></results>\s*$')
OPENING = Ledger.of(Decimal(10**9), {SYMBOL: Decimal(10**6)}, ())  # never short of either


@dataclass
class Client:
    """One trader: orders of its own account, alternately buying and selling one share."""

    account: str
    send: object
    opened: list[int] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    longest_s: float = 0.0

    def trade_until(self, stop: threading.Event) -> None:
        side = 1
        while not stop.is_set():
            body = (
                f'<transactions id="{self.account}"><order sym="{SYMBOL}" amount="{side}"'
                ' limit="10"/></transactions>'
            ).encode()
            side = -side
            started = time.monotonic()
            try:
                reply = self.send(body)
            except Exception as error:  # noqa: BLE001 - every way of not being answered
                self.failures.append(f"{type(error).__name__}: {error}")
                continue
            self.longest_s = max(self.longest_s, time.monotonic() - started)
            match = OPENED.match(reply)
            if match is None:
                self.failures.append(reply.decode(errors="replace"))
            else:
                self.opened.append(int(match.group(1)))


@contextmanager
def keyed_load(cluster, clients: list[Client]):
    stop = threading.Event()
    threads = [threading.Thread(target=client.trade_until, args=(stop,)) for client in clients]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join()


def wait_for_more(clients: list[Client], more: int, timeout: float = 60.0) -> None:
    target = sum(len(client.opened) for client in clients) + more
    deadline = time.monotonic() + timeout
    while sum(len(client.opened) for client in clients) < target:
        assert time.monotonic() < deadline, f"fewer than {more} more orders in {timeout} s"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def cluster(database_url, schema_engine, tmp_path_factory):
    with running_cluster(
        tmp_path_factory.mktemp("cluster") / "cluster.log",
        DATABASE_URL=database_url,
        EXCHANGE_BALANCER_SERVER_TIMEOUT=str(SERVER_TIMEOUT_S),
        EXCHANGE_IDEMPOTENCY_LEASE=str(LEASE_S),
        EXCHANGE_DEADLINE="2",
    ) as running:
        yield running


@pytest.fixture
def clients(cluster, engine):
    """Three clients over HTTP and three over TCP, each with an account of its own."""
    accounts = [str(number) for number in range(1, 7)]
    post_create(cluster.web_url + "/", accounts, OPENING)
    http = keyed_http_sender(cluster.web_url + "/", ATTEMPT_TIMEOUT_S, resend_for=60)
    tcp = keyed_tcp_sender(cluster.tcp_address, ATTEMPT_TIMEOUT_S, resend_for=60)
    return [Client(account, http if int(account) <= 3 else tcp) for account in accounts]


def answered_exactly_once(engine, clients: list[Client]) -> None:
    opened = [order for client in clients for order in client.opened]
    with engine.connect() as connection:
        stored = connection.scalars(select(orders.c.id)).all()
    assert [client.failures for client in clients] == [[]] * len(clients)
    assert len(opened) == len(set(opened))
    assert sorted(stored) == sorted(opened)
    assert broken_rules(engine) == []


def seen(cluster, number: int, state: str, timeout: float = 30.0) -> None:
    cluster.wait_until(
        lambda: cluster.host_state(number) == {state}, f"host{number} {state}", timeout
    )


def test_an_instance_killed_under_load_loses_and_duplicates_nothing(cluster, clients, engine):
    with keyed_load(cluster, clients):
        wait_for_more(clients, 60)
        for pid in cluster.instance_pids(2):
            os.kill(pid, signal.SIGKILL)
        seen(cluster, 2, "DOWN")
        seen(cluster, 2, "UP")
        wait_for_more(clients, 60)
    answered_exactly_once(engine, clients)


def test_a_hung_instance_costs_its_clients_a_bounded_wait_and_runs_nothing_twice(
    cluster, clients, engine
):
    pids = cluster.instance_pids(3)
    with keyed_load(cluster, clients):
        wait_for_more(clients, 60)
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        try:
            seen(cluster, 3, "DOWN")
            wait_for_more(clients, 60)
        finally:
            for pid in pids:
                os.kill(pid, signal.SIGCONT)
        seen(cluster, 3, "UP")
        wait_for_more(clients, 30)
    answered_exactly_once(engine, clients)
    # HAProxy's wait, then the hung attempt's lease and a session ended by PostgreSQL
    bound = SERVER_TIMEOUT_S + LEASE_S + 2 + 5
    assert max(client.longest_s for client in clients) < bound


def test_a_rolling_restart_under_load_fails_no_request(cluster, clients, engine):
    with keyed_load(cluster, clients):
        wait_for_more(clients, 60)
        rolled = cluster.log_text().count("rolling restart done")
        cluster.process.send_signal(signal.SIGHUP)
        cluster.wait_until(
            lambda: cluster.log_text().count("rolling restart done") > rolled, "rolled", 120
        )
        wait_for_more(clients, 60)
    answered_exactly_once(engine, clients)
