"""Prometheus metrics: counted in every gunicorn worker, summed at GET /metrics."""

import pytest
import requests
from lxml import etree
from prometheus_client import REGISTRY
from sqlalchemy import make_url, text
from sqlalchemy.exc import DBAPIError

from app.exchange.transactions import Exchange
from app.local import cluster
from app.storage.engine import database_engine
from app.web import metrics
from tests.web.servers import scrape

ACCOUNTS = (
    b'<create><account id="101" balance="1000"/><account id="102" balance="0"/>'
    b'<symbol sym="MTR"><account id="102">100</account></symbol></create>'
)
BUY = b'<transactions id="101"><order sym="MTR" amount="10" limit="2"/></transactions>'
SELL = b'<transactions id="102"><order sym="MTR" amount="-4" limit="1"/></transactions>'
CANCEL = '<transactions id="101"><cancel id="{0}"/><query id="{0}"/><cancel id="0"/></transactions>'


def increase(before, after, name, **labels) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0) - before.get(key, 0)


def test_metrics_count_requests_results_and_latency(server, engine):
    def post(body: bytes) -> etree._Element:
        # a fresh connection each time: the requests spread over the workers
        reply = requests.post(server, data=body, headers={"Connection": "close"}, timeout=30)
        return etree.fromstring(reply.content)

    before = scrape(server)
    post(ACCOUNTS)
    buy = post(BUY)[0].get("id")
    post(SELL)
    post(CANCEL.format(buy).encode())
    post(b"<create")
    after = scrape(server)

    def grew(name, **labels):
        return increase(before, after, name, **labels)

    assert grew("exchange_requests_total", kind="create", outcome="ok") == 1
    assert grew("exchange_requests_total", kind="transactions", outcome="ok") == 3
    assert grew("exchange_requests_total", kind="unparsed", outcome="bad_request") == 1
    assert grew("exchange_results_total", result="created") == 3
    assert grew("exchange_results_total", result="opened") == 2
    assert grew("exchange_results_total", result="canceled") == 1
    assert grew("exchange_results_total", result="status") == 1
    assert grew("exchange_results_total", result="failed") == 1
    assert grew("exchange_request_duration_seconds_count", kind="transactions") == 3
    assert grew("exchange_request_duration_seconds_bucket", kind="transactions", le="+Inf") == 3
    assert grew("exchange_executions_total") == 1
    assert grew("exchange_traded_shares_total") == 4
    assert after[("exchange_transaction_retries_total", ())] >= 0
    assert after[("exchange_db_pool_size", ())] > 0
    assert after[("exchange_db_connections_checked_out", ())] == 0


def test_retries_are_exported_as_increments(exchange_engine):
    exchange = Exchange(exchange_engine)
    counters = metrics.ExchangeCounters(exchange)
    before = REGISTRY.get_sample_value("exchange_transaction_retries_total")
    exchange.retries += 2
    counters.export()
    counters.export()
    exchange.retries += 1
    counters.export()
    assert REGISTRY.get_sample_value("exchange_transaction_retries_total") - before == 3


def test_checked_out_connections_are_followed(database_url):
    def checked_out():
        return REGISTRY.get_sample_value("exchange_db_connections_checked_out")

    engine = database_engine(database_url, pool_size=2)
    metrics.watch_pool(engine, 2)
    idle = checked_out()
    try:
        with engine.connect(), engine.connect():
            assert checked_out() == idle + 2
        assert checked_out() == idle
    finally:
        engine.dispose()


def test_connections_that_never_came_are_not_counted_back(database_url):
    """With the database gone, each failed reconnect of a pooled connection reports a return
    of a connection that was never handed out: the gauge went one lower for each."""

    def checked_out():
        return REGISTRY.get_sample_value("exchange_db_connections_checked_out")

    url = make_url(database_url).set(database="exchange_gone").render_as_string(False)
    cluster.create_database(url)
    engine = database_engine(url, pool_size=1)
    metrics.watch_pool(engine, 1)
    try:
        with engine.connect():  # the pool now holds a connection
            pass
        cluster.drop_database(url)  # which the server ends; new ones are refused
        before = checked_out()
        for _ in range(3):
            with pytest.raises(DBAPIError), engine.connect() as connection:
                connection.execute(text("SELECT 1"))
    finally:
        engine.dispose()
    assert checked_out() == before
