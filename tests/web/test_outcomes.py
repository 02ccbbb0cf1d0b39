"""Every failure for want of the database says whether it may have been applied, and comes
within the request's deadline even when the database does not answer (app/outcomes.py)."""

import logging
import time

import requests
from falcon import testing
from lxml import etree
from sqlalchemy import text

from app.config import Config
from app.outcomes import Outcome, Unavailable, outcome_of
from app.storage.engine import database_engine
from app.storage.schema import create_schema
from app.web.app import create_app
from tests.locks import symbol_locked
from tests.web.servers import running_gunicorn

SETUP = (
    b'<create><account id="1" balance="100"/>'
    b'<symbol sym="X"><account id="1">10</account></symbol></create>'
)
BUY = b'<transactions id="1"><order sym="X" amount="1" limit="5"/></transactions>'
DEADLINE_S = 1.0
HELD_S = 4 * DEADLINE_S  # how long the symbol stays locked: far past the deadline


def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout} s"
        time.sleep(0.05)


def errors(reply: bytes) -> list[str]:
    return [child.text for child in etree.fromstring(reply) if child.tag == "error"]


def orders(engine) -> int:
    with engine.connect() as connection:
        return connection.execute(text("SELECT count(*) FROM orders")).scalar_one()


def deadline_client(database_url: str, **settings) -> testing.TestClient:
    config = Config(database_url=database_url, deadline=DEADLINE_S, **settings)
    client = testing.TestClient(create_app(config))
    assert client.simulate_post("/", body=SETUP).status_code == 200
    return client


def test_an_order_kept_waiting_for_a_lock_past_the_deadline_is_not_applied(engine, database_url):
    """PostgreSQL's lock timeout ends the wait: the transaction is rolled back, and says so."""
    client = deadline_client(database_url)
    with symbol_locked(engine, "X", HELD_S):
        started = time.monotonic()
        result = client.simulate_post("/", body=BUY)
        waited = time.monotonic() - started

    assert result.status_code == 503
    assert errors(result.content) == [Unavailable.DEADLINE.text()]
    assert waited < HELD_S
    assert orders(engine) == 0


def test_a_transaction_failed_by_the_database_is_not_also_logged_as_slow(
    engine, database_url, caplog
):
    """The outage is logged once; a line per transaction it made wait would drown it."""
    client = deadline_client(database_url, slow_ms=DEADLINE_S * 100)
    with symbol_locked(engine, "X", HELD_S), caplog.at_level(logging.WARNING):
        assert client.simulate_post("/", body=BUY).status_code == 503
    assert "slow transaction" not in caplog.text


def test_a_commit_whose_answer_never_comes_is_outcome_unknown(own_cluster, tmp_path):
    """PostgreSQL waits for a synchronous standby that does not exist: the COMMIT is sent and
    written, but never answered. The deadline ends the wait, and the reply says the order may
    have been placed; once the server lets the commit through, it has been."""
    url = own_cluster.url()
    admin = database_engine(url, pool_size=1)
    create_schema(admin)

    def standby(names: str) -> None:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text(f"ALTER SYSTEM SET synchronous_standby_names = '{names}'"))
            connection.execute(text("SELECT pg_reload_conf()"))

    try:
        with running_gunicorn(
            url, tmp_path / "gunicorn.log", EXCHANGE_DEADLINE=str(DEADLINE_S)
        ) as server:
            assert requests.post(server.url, data=SETUP, timeout=10).status_code == 200
            standby("nowhere")
            started = time.monotonic()
            reply = requests.post(server.url, data=BUY, timeout=4 * DEADLINE_S + 10)
            waited = time.monotonic() - started
            standby("")
        assert reply.status_code == 503
        [why] = errors(reply.content)
        assert why == Unavailable.DEADLINE_AFTER_COMMIT.text()
        assert outcome_of(why) is Outcome.UNKNOWN
        assert waited < 2 * DEADLINE_S + 1
        wait_until(lambda: orders(admin) == 1)  # the waiting commit goes through
    finally:
        admin.dispose()
