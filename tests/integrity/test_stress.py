"""SPEC §2 and §6 under load: many processes of many clients through a real gunicorn.

Every account is driven by three clients in three processes at once.
Afterwards the audit must pass, no client may have seen a 5xx or a database
error, every order id a client got back must exist, each account's cash and
shares must be exactly what its own replies explain, and PostgreSQL must not
have detected a single deadlock (retries would hide them from clients).
"""

from collections import defaultdict

from sqlalchemy import func, select

from app.storage.schema import executions
from tests.integrity.books import broken_rules, deadlocks, expected_ledger, stored_ledger
from tests.integrity.traffic import ACCOUNTS, OPENING, SYMBOLS, hammer, post_create, query_statuses

PROCESSES = 3
THREADS_PER_PROCESS = 4
ROUNDS = 40


def test_concurrent_clients_keep_every_account_and_the_books_balanced(server, engine):
    post_create(server, ACCOUNTS, OPENING)
    deadlocks_before = deadlocks(engine)

    reports = hammer(server, ACCOUNTS, SYMBOLS, PROCESSES, THREADS_PER_PROCESS, ROUNDS)

    assert [failure for report in reports for failure in report.failures] == []
    assert broken_rules(engine) == []
    placed = defaultdict(list)
    for report in reports:
        placed[report.account] += report.placed
    for account, orders in placed.items():
        statuses = query_statuses(server, account, [order.order_id for order in orders])
        assert {s.tag for s in statuses.values()} <= {"status"}, "an order id got back is gone"
        assert stored_ledger(engine, account) == expected_ledger(OPENING, orders, statuses), (
            f"account {account} does not add up"
        )
    assert deadlocks(engine) == deadlocks_before, (
        "the locking order should make deadlocks impossible"
    )
    with engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(executions)) > 0
    assert sum(report.canceled for report in reports) > 0
    assert sum(report.refused for report in reports) > 0
