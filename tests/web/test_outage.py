"""The database going away: 503 when nothing could be done, counted as unavailable;
one error line when it goes, a summary while it stays away, a line when it is back."""

import logging

import pytest
from falcon import testing
from lxml import etree
from prometheus_client import REGISTRY

from app.config import Config
from app.outcomes import Unavailable
from app.storage.engine import database_engine
from app.storage.schema import create_schema
from app.web.app import create_app
from app.web.outage import DatabaseOutage

ACCOUNT = b'<create><account id="1" balance="100"/></create>'
TWO_QUERIES = b'<transactions id="1"><query id="1"/><query id="2"/></transactions>'
# The second child is refused before the database is asked: amount 0.
QUERY_AND_INVALID_ORDER = (
    b'<transactions id="1"><query id="1"/><order sym="X" amount="0" limit="1"/></transactions>'
)


@pytest.fixture
def cluster(own_cluster):
    engine = database_engine(own_cluster.url(), pool_size=1)
    create_schema(engine)
    engine.dispose()
    return own_cluster


@pytest.fixture
def client(cluster):
    """The app on the test's own database, knowing account 1 already, as a busy worker would."""
    client = testing.TestClient(create_app(Config(database_url=cluster.url())))
    assert client.simulate_post("/", body=ACCOUNT).status_code == 200
    assert client.simulate_post("/", body=TWO_QUERIES).status_code == 200
    return client


@pytest.fixture
def database_log(caplog):
    caplog.set_level(logging.INFO)
    return lambda: [
        (r.levelno, r.getMessage()) for r in caplog.records if r.name == "app.web.database"
    ]


def requests_counted(outcome: str) -> float:
    labels = {"kind": "transactions", "outcome": outcome}
    return REGISTRY.get_sample_value("exchange_requests_total", labels) or 0.0


def test_every_item_failing_for_want_of_the_database_gets_503(client, cluster):
    before = requests_counted("unavailable")
    cluster.stop()
    result = client.simulate_post("/", body=TWO_QUERIES)
    assert result.status_code == 503
    assert [(child.tag, child.text) for child in etree.fromstring(result.content)] == [
        ("error", Unavailable.DATABASE.text())
    ] * 2
    assert requests_counted("unavailable") == before + 1


def test_grants_of_a_symbol_the_database_could_not_create_are_answered_not_applied(client, cluster):
    """Each child keeps its own reply, as when the database fails any other item."""
    cluster.stop()
    result = client.simulate_post(
        "/", body=b'<create><symbol sym="S"><account id="1">5</account></symbol></create>'
    )
    assert result.status_code == 503
    assert [
        (child.tag, dict(child.attrib), child.text) for child in etree.fromstring(result.content)
    ] == [("error", {"sym": "S", "id": "1"}, Unavailable.DATABASE.text())]


def test_some_items_failing_for_want_of_the_database_count_as_partly_unavailable(client, cluster):
    before = requests_counted("partly_unavailable")
    cluster.stop()
    result = client.simulate_post("/", body=QUERY_AND_INVALID_ORDER)
    assert result.status_code == 200
    assert requests_counted("partly_unavailable") == before + 1


def test_an_outage_logs_one_error_then_one_line_when_the_database_is_back(
    client, cluster, database_log, caplog
):
    cluster.stop()
    for _ in range(5):
        assert client.simulate_post("/", body=TWO_QUERIES).status_code == 503
    [(level, message)] = database_log()
    assert level == logging.ERROR
    assert message.startswith("database unavailable: ")
    assert message.endswith("; requests fail until it is back")
    errors = [record.name for record in caplog.records if record.levelno >= logging.ERROR]
    assert errors == ["app.web.database"], "one error for the outage, not one per request"

    cluster.ensure_running()
    assert client.simulate_post("/", body=TWO_QUERIES).status_code == 200
    level, message = database_log()[-1]
    assert level == logging.WARNING
    assert message.startswith("database back after ")
    assert message.endswith("s; 5 requests failed meanwhile")


def test_a_long_outage_is_summarised_every_so_often(database_log):
    now = [0.0]
    outage = DatabaseOutage(summary_every_s=30, clock=lambda: now[0])
    for now[0] in (0, 10, 20, 30, 40, 61):
        outage.request_failed("connection refused")
    assert [message for _, message in database_log()] == [
        "database unavailable: connection refused; requests fail until it is back",
        "database still unavailable after 30 s: 4 requests failed so far (connection refused)",
        "database still unavailable after 61 s: 6 requests failed so far (connection refused)",
    ]


def test_an_outage_of_writes_alone_does_not_flap_between_down_and_back(database_log):
    """Reads served between failing writes (a full disk) keep it one outage: a line when it
    begins, one when the first read served seemed to end it and the next write failed, a
    summary every 30 s, a line when writes are served again, and no line per pair."""
    now = [0.0]
    outage = DatabaseOutage(summary_every_s=30, clock=lambda: now[0])
    for step in range(4000):  # 40 s: a write failing, then a read served, every 10 ms
        now[0] = step / 100
        outage.request_failed("could not extend file: No space left on device")
        outage.request_served()
    now[0] = 60.0  # writes served again
    outage.request_served()
    messages = [message for _, message in database_log()]
    assert len(messages) == 5, messages
    assert messages[0].startswith("database unavailable: could not extend file")
    assert messages[2].startswith("database unavailable again 0.0 s after it was back: ")
    assert messages[-2].startswith("database still unavailable after 30 s: 3001 requests failed")
    assert messages[-1] == "database back after 60 s; 4000 requests failed meanwhile"
