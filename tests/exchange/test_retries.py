"""The safety nets of the transaction module: transactions that run again, slow ones logged."""

import logging
from decimal import Decimal

import pytest
from sqlalchemy import text

from app.exchange.commands import CreateAccount
from app.exchange.transactions import Exchange
from app.storage.engine import exchange_engine


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
