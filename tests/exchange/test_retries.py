"""The safety nets of the transaction module: transactions that run again, slow ones logged."""

import logging
from decimal import Decimal

import psycopg2
import pytest
from sqlalchemy import event, text

from app.exchange.commands import CreateAccount, PlaceOrder
from app.exchange.errors import CommitUnconfirmed
from app.exchange.transactions import Exchange
from app.storage.engine import exchange_engine
from tests.exchange.market import Market


@pytest.fixture
def single_connection(engine, database_url):
    """An engine whose pool holds one connection, so the test knows which one is used."""
    own = exchange_engine(database_url, pool_size=1)
    yield own
    own.dispose()


def _server_drops_the_pooled_connection(single_connection, engine) -> None:
    with single_connection.connect() as pooled:
        pid = pooled.execute(text("SELECT pg_backend_pid()")).scalar_one()
    with engine.connect() as other:
        other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})


def test_connection_dropped_by_the_server_is_replaced_and_the_transaction_runs_again(
    single_connection, engine, caplog
):
    exchange = Exchange(single_connection)
    _server_drops_the_pooled_connection(single_connection, engine)

    with caplog.at_level(logging.WARNING, logger="app.exchange.transactions"):
        exchange.create_account(CreateAccount("1", Decimal(5)))

    assert exchange.retries == 1
    assert "retrying create_account after a lost connection (attempt 1" in caplog.text
    with engine.connect() as connection:
        balance = connection.execute(text("SELECT balance FROM accounts WHERE id = '1'")).scalar()
    assert balance == 5


def test_slow_transaction_is_logged_with_its_name_and_duration(engine, exchange_engine, caplog):
    exchange = Exchange(exchange_engine, slow_seconds=0)
    with caplog.at_level(logging.WARNING, logger="app.exchange.transactions"):
        exchange.create_account(CreateAccount("1", Decimal(5)))
    assert "slow transaction: create_account took" in caplog.text


def test_quick_transaction_is_not_logged(engine, exchange_engine, caplog):
    exchange = Exchange(exchange_engine, slow_seconds=60)
    with caplog.at_level(logging.WARNING, logger="app.exchange.transactions"):
        exchange.create_account(CreateAccount("1", Decimal(5)))
    assert "slow transaction" not in caplog.text


def test_a_connection_lost_once_commit_is_sent_is_not_run_again(single_connection, engine):
    """The commit may have landed: running the order again could place it twice."""
    market = Market(Exchange(single_connection), engine)
    market.account("1", 1000)
    exchange = market.exchange

    class DroppedWithTheCommit(psycopg2.extensions.cursor):
        def execute(self, query, parameters=None):
            if "; COMMIT" in query:
                with engine.connect() as other:
                    pid = self.connection.get_backend_pid()
                    other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            return super().execute(query, parameters)

    def inject(dbapi_connection, connection_record, proxy):
        dbapi_connection.cursor_factory = DroppedWithTheCommit

    market.grant("1", "X", 10)
    event.listen(single_connection, "checkout", inject)
    try:
        with pytest.raises(CommitUnconfirmed) as lost:
            exchange.place_order(PlaceOrder("1", "X", Decimal(1), Decimal(5)))
    finally:
        event.remove(single_connection, "checkout", inject)
    assert lost.value.error.connection_invalidated
    assert exchange.retries == 0
    assert market.balance("1") == 1000  # this time the server died before committing
    market.buy("1", "X", 1, 5)  # and the next transaction gets a new connection
    assert market.balance("1") == 995
