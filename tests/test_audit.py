"""The ledger audit: silent on healthy books, and each check catches its own corruption.

The corruptions are written straight into the tables, as a bug or a careless
hand could; where a schema constraint already forbids the state, the test
drops that constraint for its duration.
"""

import os
import subprocess
import sys

import pytest
from sqlalchemy import text

from app.audit import CHECKS, audit
from app.local.cluster import PROJECT
from tests.conftest import empty_tables


@pytest.fixture
def traded(market):
    """Books after trading both ways, with a fill, a rest, a partial fill and a cancel.

    Order ids, in arrival order: the sell at 10 rests, the buy at 12 takes 4 of
    it at 10, the buy at 9 rests, the buy at 8 is canceled, the sell at 8 takes
    1 of the buy at 9 at 9.
    """
    market.account("1", 1000)
    market.account("2", 1000)
    market.grant("2", "X", 100)
    market.sell("2", "X", 10, 10)
    market.buy("1", "X", 4, 12)
    market.buy("1", "X", 5, 9)
    market.cancel("1", market.buy("1", "X", 2, 8))
    market.sell("2", "X", 1, 8)
    return market


def failed_checks(engine) -> set[str]:
    return {finding.check for finding in audit(engine) if finding.violations}


def test_audit_passes_after_trading(traded):
    assert failed_checks(traded.engine) == set()


# (check expected to fail, schema constraint standing in the way, corrupting SQL)
CORRUPTIONS = [
    ("cash-conserved", None, "UPDATE accounts SET balance = balance + 1 WHERE id = '1'"),
    ("shares-conserved", None, "UPDATE positions SET shares = shares + 1 WHERE account_id = '1'"),
    (
        "balance-ledger",
        None,
        "UPDATE accounts SET balance = balance + CASE id WHEN '1' THEN 5 ELSE -5 END",
    ),
    (
        "position-ledger",
        None,
        "UPDATE positions SET shares = shares + CASE account_id WHEN '1' THEN 1 ELSE -1 END",
    ),
    # the statement's reservations, as the read computes them, off the ledger
    (
        "statement-cash",
        None,
        "UPDATE orders SET limit_price = limit_price + 1 WHERE side = 'buy' AND open_shares > 0",
    ),
    (
        "statement-shares",
        None,
        "UPDATE orders SET open_shares = open_shares + 1, shares = shares + 1"
        " WHERE side = 'sell' AND open_shares > 0",
    ),
    (
        "no-negative-balance",
        "balance_not_negative",
        "UPDATE accounts SET balance = -1, deposited = deposited - balance - 1 WHERE id = '1'",
    ),
    (
        "no-negative-position",
        "position_not_negative",
        "UPDATE positions SET shares = -shares WHERE account_id = '1'",
    ),
    (
        "order-shares",
        "order_shares_add_up",
        "UPDATE orders SET shares = shares + 1 WHERE side = 'sell'",
    ),
    (
        "order-executions",
        None,
        "UPDATE orders SET executed_shares = 0, open_shares = shares WHERE canceled_shares = 0",
    ),
    (
        "execution-legs",
        None,
        "UPDATE executions SET buy_order_id = sell_order_id, sell_order_id = buy_order_id",
    ),
    ("execution-within-limits", None, "UPDATE executions SET price = 1000"),
    # the first execution: buy limit 12 took the resting sell at 10; 11 lies between
    ("execution-at-resting-limit", None, "UPDATE executions SET price = 11 WHERE price = 10"),
    (
        "book-not-crossed",
        None,
        "UPDATE orders SET limit_price = 20 WHERE side = 'buy' AND open_shares > 0",
    ),
]


def test_every_check_has_a_corruption():
    assert {check.name for check in CHECKS} == {name for name, _, _ in CORRUPTIONS}


@pytest.mark.parametrize(
    "check, constraint, corruption", CORRUPTIONS, ids=[name for name, _, _ in CORRUPTIONS]
)
def test_check_catches_its_corruption(traded, check, constraint, corruption):
    with constraint_dropped(traded.engine, constraint):
        with traded.engine.begin() as connection:
            assert connection.execute(text(corruption)).rowcount > 0
        assert check in failed_checks(traded.engine)


def test_command_exits_zero_on_healthy_books(traded, database_url):
    finished = run_audit_command(database_url)
    assert finished.returncode == 0, finished.stdout
    assert f"{len(CHECKS)} checks hold, 0 violated" in finished.stdout


def test_command_exits_non_zero_and_names_the_check_on_corrupted_books(traded, database_url):
    with traded.engine.begin() as connection:
        connection.execute(text("UPDATE accounts SET balance = balance + 1 WHERE id = '1'"))
    finished = run_audit_command(database_url)
    assert finished.returncode == 1, finished.stdout
    assert "FAIL  cash-conserved" in finished.stdout


def run_audit_command(database_url: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "app.audit"],
        cwd=PROJECT,
        env=dict(os.environ, DATABASE_URL=database_url),
        capture_output=True,
        text=True,
        timeout=60,
    )


class constraint_dropped:
    """Lift one named CHECK constraint, and restore it on empty tables afterwards."""

    def __init__(self, engine, name: str | None):
        self.engine, self.name = engine, name

    def __enter__(self):
        if self.name is None:
            return
        with self.engine.begin() as connection:
            self.table, self.definition = connection.execute(
                text(
                    "SELECT conrelid::regclass::text, pg_get_constraintdef(oid)"
                    " FROM pg_constraint WHERE conname = :name"
                ),
                {"name": self.name},
            ).one()
            connection.execute(text(f"ALTER TABLE {self.table} DROP CONSTRAINT {self.name}"))

    def __exit__(self, *exception):
        if self.name is None:
            return
        empty_tables(self.engine)
        with self.engine.begin() as connection:
            connection.execute(
                text(f"ALTER TABLE {self.table} ADD CONSTRAINT {self.name} {self.definition}")
            )
