"""Statements prepared once per connection, and transactions that send their own BEGIN."""

import pytest
from sqlalchemy import Integer, bindparam, literal_column, select, text
from sqlalchemy.exc import DataError, IntegrityError

from app.storage.schema import accounts
from app.storage.session import Statement, Transaction, read

BALANCE_OF = Statement(
    "test_balance_of",
    select(accounts.c.balance).where(
        accounts.c.id == bindparam("account_id"), accounts.c.balance >= 0
    ),
)
DOUBLE = Statement("test_double", select(bindparam("n", type_=Integer) * 2))


def test_constants_are_written_into_the_sql_and_values_stay_parameters():
    assert "accounts.balance >= 0" in BALANCE_OF.sql
    assert "%(account_id)s" in BALANCE_OF.sql
    assert BALANCE_OF.call == "EXECUTE test_balance_of(%(account_id)s)"
    assert BALANCE_OF.definition.startswith("PREPARE test_balance_of (TEXT) AS SELECT")


def test_a_parameter_without_a_type_cannot_be_prepared():
    with pytest.raises(TypeError, match="'n' needs a type"):
        Statement("test_untyped", select(bindparam("n") + literal_column("1")))


def test_a_statement_is_prepared_in_its_first_message_then_run_by_name(exchange_engine, sent):
    with exchange_engine.connect() as connection:
        connection.info.pop("prepared statements", None)
        connection.exec_driver_sql("DEALLOCATE ALL")
        sent.clear()
        assert read(connection, DOUBLE, n=21) == [(42,)]
        assert read(connection, DOUBLE, n=5) == [(10,)]
    assert sent[0].startswith("PREPARE test_double (INTEGER) AS")
    assert sent[0].endswith("; EXECUTE test_double(%(n)s)")
    assert sent[1] == "EXECUTE test_double(%(n)s)"


def test_a_failed_first_message_discards_its_connection(exchange_engine):
    failing = Statement("test_failing", select(literal_column("1") / bindparam("n", type_=Integer)))
    with exchange_engine.connect() as connection:
        with pytest.raises(DataError, match="division by zero"):
            read(connection, failing, n=0)
        assert connection.invalidated
    with exchange_engine.connect() as connection:
        assert read(connection, failing, n=1) == [(1,)]


def test_begin_rides_with_the_first_statement_and_commit_ends_it(engine, exchange_engine, sent):
    with exchange_engine.connect() as connection:
        transaction = Transaction(connection)
        transaction.execute(DOUBLE, n=1)
        in_transaction = connection.exec_driver_sql("SELECT now() = statement_timestamp()")
        assert in_transaction.scalar_one() is False  # a transaction is open: now() stood still
        transaction.commit()
    assert sent[0].startswith("BEGIN; ")
    assert sent[-1] == "COMMIT"


def test_a_transaction_never_begun_ends_without_a_round_trip(exchange_engine, sent):
    with exchange_engine.connect() as connection:
        Transaction(connection).rollback()
    assert sent == []


def test_a_rolled_back_transaction_leaves_nothing_behind(engine, exchange_engine):
    insert = Statement(
        "test_insert_account",
        accounts.insert().values(
            id=bindparam("account_id"), balance=bindparam("balance"), deposited=0
        ),
    )
    with exchange_engine.connect() as connection:
        transaction = Transaction(connection)
        transaction.execute(insert, account_id="1", balance=5)
        transaction.rollback()
        with pytest.raises(IntegrityError):
            transaction.execute(insert, account_id="2", balance=-1)
        transaction.rollback()
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM accounts")).scalar_one() == 0


def test_a_transaction_needs_an_autocommit_connection(engine):
    with engine.connect() as connection, pytest.raises(RuntimeError, match="autocommit"):
        Transaction(connection)
