"""Statements prepared once per connection, and transactions that send their own BEGIN."""

import pytest
from sqlalchemy import Integer, Text, bindparam, literal_column, select, text
from sqlalchemy.exc import DataError, IntegrityError

from app.storage.schema import accounts
from app.storage.session import (
    Ahead,
    Statement,
    Transaction,
    ahead_of_the_next_message,
    execute_alone,
    send_ahead,
)

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
        assert execute_alone(connection, DOUBLE, n=21) == [(42,)]
        assert execute_alone(connection, DOUBLE, n=5) == [(10,)]
    assert sent[0].startswith("PREPARE test_double (INTEGER) AS")
    assert sent[0].endswith("; EXECUTE test_double(%(n)s)")
    assert sent[1] == "EXECUTE test_double(%(n)s)"


def test_a_failed_first_message_discards_its_connection(exchange_engine):
    failing = Statement("test_failing", select(literal_column("1") / bindparam("n", type_=Integer)))
    with exchange_engine.connect() as connection:
        with pytest.raises(DataError, match="division by zero"):
            execute_alone(connection, failing, n=0)
        assert connection.invalidated
    with exchange_engine.connect() as connection:
        assert execute_alone(connection, failing, n=1) == [(1,)]


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


INSERT_ACCOUNT = Statement(
    "test_insert_account_ahead",
    accounts.insert().values(
        id=bindparam("ahead_id", type_=Text), balance=bindparam("ahead_balance"), deposited=0
    ),
)
INSERT_ANOTHER = Statement(
    "test_insert_another_account",
    accounts.insert().values(id=bindparam("another_id", type_=Text), balance=0, deposited=0),
)


class Refused(Exception):
    pass


def ahead(account_id: str, balance=0) -> Ahead:
    """An account inserted ahead; its insert's failure is its refusal."""

    def refusal(error):
        return Refused() if isinstance(error, IntegrityError) else None

    return Ahead((INSERT_ACCOUNT,), {"ahead_id": account_id, "ahead_balance": balance}, refusal)


def account_ids(engine) -> list[str]:
    with engine.connect() as connection:
        return list(connection.execute(text("SELECT id FROM accounts ORDER BY id")).scalars())


def test_statements_ahead_ride_with_the_next_lone_statement_only(engine, exchange_engine, sent):
    first = ahead("1")
    with ahead_of_the_next_message(first), exchange_engine.connect() as connection:
        assert execute_alone(connection, DOUBLE, n=2) == [(4,)]
        assert execute_alone(connection, DOUBLE, n=3) == [(6,)]
    assert len(sent) == 2
    assert "SET LOCAL synchronous_commit TO off; EXECUTE test_insert_account_ahead(" in sent[0]
    assert sent[0].endswith("EXECUTE test_double(%(n)s)")
    assert "test_insert_account_ahead" not in sent[1]
    assert first.done
    assert account_ids(engine) == ["1"]


def test_statements_ahead_ride_in_a_transaction_and_are_done_when_it_commits(
    engine, exchange_engine, sent
):
    riding = ahead("1")
    with ahead_of_the_next_message(riding), exchange_engine.connect() as connection:
        transaction = Transaction(connection)
        transaction.execute(DOUBLE, n=1)
        transaction.execute(DOUBLE, n=2)
        assert not riding.done
        transaction.commit()
    assert riding.done
    assert sent[0].startswith("BEGIN; ") and "EXECUTE test_insert_account_ahead(" in sent[0]
    assert "test_insert_account_ahead" not in sent[1]
    assert account_ids(engine) == ["1"]


def test_a_transaction_rolled_back_takes_them_along_and_the_next_carries_them_again(
    engine, exchange_engine, sent
):
    riding = ahead("1")
    with ahead_of_the_next_message(riding), exchange_engine.connect() as connection:
        rolled_back = Transaction(connection)
        rolled_back.execute(INSERT_ANOTHER, another_id="2")
        rolled_back.rollback()
        assert account_ids(engine) == [] and not riding.done
        committed = Transaction(connection)
        committed.execute_and_commit(INSERT_ANOTHER, another_id="3")
    assert riding.done
    assert account_ids(engine) == ["1", "3"]


def test_a_refusal_of_the_statements_ahead_is_raised_and_nothing_after_them_runs(
    engine, exchange_engine
):
    broken = ahead("2", balance=-1)  # balance_not_negative
    with ahead_of_the_next_message(broken), exchange_engine.connect() as connection:
        with pytest.raises(Refused):
            execute_alone(connection, INSERT_ANOTHER, another_id="3")
        assert broken.done
        assert execute_alone(connection, DOUBLE, n=1) == [(2,)]  # the connection is usable
    assert account_ids(engine) == []


def test_statements_ahead_and_those_they_ride_with_may_not_share_a_parameter(exchange_engine):
    with ahead_of_the_next_message(ahead("5")), exchange_engine.connect() as connection:
        with pytest.raises(ValueError, match="ahead_id"):
            execute_alone(connection, INSERT_ACCOUNT, ahead_id="6", ahead_balance=0)


def test_statements_ahead_nothing_carried_go_alone(engine, exchange_engine, sent):
    lonely = ahead("4")
    with exchange_engine.connect() as connection:
        send_ahead(connection, lonely)
    assert len(sent) == 1 and lonely.done
    assert account_ids(engine) == ["4"]


INSERT_THIRD = Statement(
    "test_insert_third_account_ahead",
    accounts.insert().values(id=bindparam("third_id", type_=Text), balance=0, deposited=0),
)


def another_ahead(account_id: str) -> Ahead:
    """A second kind of statements ahead, with parameters of its own and no refusal."""
    return Ahead((INSERT_THIRD,), {"third_id": account_id}, lambda error: None)


def test_statements_of_several_aheads_ride_together_in_the_order_given(
    engine, exchange_engine, sent
):
    outer, inner = ahead("1"), another_ahead("2")
    with ahead_of_the_next_message(outer), ahead_of_the_next_message(inner):
        with exchange_engine.connect() as connection:
            transaction = Transaction(connection)
            transaction.execute(DOUBLE, n=1)
            transaction.commit()
    assert outer.done and inner.done
    first, second = "EXECUTE test_insert_account_ahead(", "EXECUTE test_insert_third_account_ahead("
    assert sent[0].index(first) < sent[0].index(second)
    assert account_ids(engine) == ["1", "2"]


def test_one_ahead_refused_leaves_the_others_to_the_next_message(engine, exchange_engine):
    kept, broken = another_ahead("7"), ahead("8", balance=-1)
    with ahead_of_the_next_message(kept), ahead_of_the_next_message(broken):
        with exchange_engine.connect() as connection:
            with pytest.raises(Refused):
                execute_alone(connection, DOUBLE, n=1)
            assert broken.done and not kept.done
            assert account_ids(engine) == []
            execute_alone(connection, DOUBLE, n=2)
    assert kept.done
    assert account_ids(engine) == ["7"]


def test_several_aheads_may_not_share_a_parameter(exchange_engine):
    with ahead_of_the_next_message(ahead("5")), ahead_of_the_next_message(ahead("6")):
        with exchange_engine.connect() as connection, pytest.raises(ValueError, match="ahead_id"):
            execute_alone(connection, DOUBLE, n=1)
