"""SPEC §9 through a crash: a request cut off part-way by a SIGKILL of its worker, then
sent again with its key, has each of its children take effect exactly once."""

import os
import signal
import threading
import time

import requests
from lxml import etree
from sqlalchemy import func, select

from app.client.resend import RESENT_STATUSES, NotTaken, resending
from app.storage.schema import orders
from tests.integrity.books import broken_rules
from tests.integrity.test_faults import wait_for_workers
from tests.web.servers import running_gunicorn

ORDERS = 300  # about a second of work, long enough to be cut off part-way
CREATE = (
    b'<create><account id="5" balance="1000000"/>'
    b'<symbol sym="S"><account id="5">1000</account></symbol></create>'
)
# A buy that rests, then a sell that takes it: fills, executions, payments and
# positions, each of which a second run of the child would write again.
BUYS_AND_SELLS = (
    b'<transactions id="5">'
    + b'<order sym="S" amount="1" limit="2"/><order sym="S" amount="-1" limit="2"/>' * (ORDERS // 2)
    + b"</transactions>"
)
KEY = {"Idempotency-Key": "cut-off-1"}
LEASE_S = "1"  # how long a repeat is refused with 409 before it takes the claim over


def send_again(url: str) -> requests.Response:
    """The request under its key, as our clients resend it (app/client/resend.py)."""

    def attempt() -> requests.Response:
        reply = requests.post(url + "/", BUYS_AND_SELLS, headers=KEY, timeout=60)
        if reply.status_code in RESENT_STATUSES:
            raise NotTaken(f"HTTP {reply.status_code}")
        return reply

    return resending(attempt)


def stored_orders(engine) -> int:
    with engine.connect() as connection:
        return connection.scalar(select(func.count()).select_from(orders))


def test_a_request_cut_off_by_a_killed_worker_runs_each_child_once_when_repeated(
    database_url, engine, tmp_path
):
    with running_gunicorn(
        database_url,
        tmp_path / "gunicorn.log",
        EXCHANGE_WORKERS="1",
        EXCHANGE_IDEMPOTENCY_LEASE=LEASE_S,
    ) as server:
        requests.post(server.url + "/", data=CREATE, timeout=10).raise_for_status()
        first: list[requests.Response | Exception] = []

        def send_first():
            try:
                first.append(
                    requests.post(server.url + "/", BUYS_AND_SELLS, headers=KEY, timeout=30)
                )
            except requests.RequestException as error:
                first.append(error)

        sender = threading.Thread(target=send_first)
        sender.start()
        deadline = time.monotonic() + 30
        while stored_orders(engine) < ORDERS // 10:
            assert time.monotonic() < deadline and sender.is_alive(), "the request never ran"
            time.sleep(0.005)
        [worker] = server.worker_pids()
        os.kill(worker, signal.SIGKILL)
        sender.join()
        cut_at = stored_orders(engine)
        assert isinstance(first[0], requests.ConnectionError) and 0 < cut_at < ORDERS
        wait_for_workers(server, 1, killed=worker)

        repeat = send_again(
            server.url
        )  # refused until the worker is back, 409 until the lease ends
        again = send_again(server.url)

    assert repeat.status_code == 200 and again.content == repeat.content
    opened = [child.get("id") for child in etree.fromstring(repeat.content)]
    assert len(set(opened)) == ORDERS and None not in opened
    with engine.connect() as connection:
        stored = set(connection.scalars(select(orders.c.id).where(orders.c.account_id == "5")))
    assert stored == {int(order_id) for order_id in opened}
    assert broken_rules(engine) == []
