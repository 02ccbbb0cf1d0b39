"""SPEC §2 and §6 under load: many processes of many clients through a real gunicorn.

Afterwards the audit must pass, no client may have seen a 5xx or a database
error, every order id a client got back must exist, and each account's cash
and shares must be exactly what its own replies explain.
"""

from decimal import Decimal

from sqlalchemy import func, select

from app.storage.schema import executions
from tests.integrity.books import Ledger, broken_rules, expected_ledger, stored_ledger
from tests.integrity.traffic import hammer, post_create, query_statuses

PROCESSES = 3
THREADS_PER_PROCESS = 4
ROUNDS = 40
SYMBOLS = ("HOT", "WARM")
OPENING = Ledger.of(Decimal(10**9), {symbol: Decimal(10**6) for symbol in SYMBOLS}, ())


def test_concurrent_clients_keep_every_account_and_the_books_balanced(server, engine):
    accounts = [str(n) for n in range(1, PROCESSES * THREADS_PER_PROCESS + 1)]
    post_create(server, accounts, OPENING)

    reports = hammer(server, accounts, SYMBOLS, PROCESSES, ROUNDS)

    assert [failure for report in reports for failure in report.failures] == []
    assert broken_rules(engine) == []
    for report in reports:
        statuses = query_statuses(server, report.account, [o.order_id for o in report.placed])
        assert {s.tag for s in statuses.values()} <= {"status"}, "an order id got back is gone"
        assert stored_ledger(engine, report.account) == expected_ledger(
            OPENING, report.placed, statuses
        ), f"account {report.account} does not add up"
    with engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(executions)) > 0
    assert sum(report.canceled for report in reports) > 0
