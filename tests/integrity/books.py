"""How the integrity tests read the books: the audit, every table's rows, one account's ledger."""

import time
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from lxml import etree
from sqlalchemy import Engine, select, text

from app.audit import audit
from app.storage.schema import accounts, metadata, orders, positions


def broken_rules(engine: Engine) -> list[tuple[str, list]]:
    """The audit's violated checks; [] when the books balance."""
    return [(finding.check, finding.violations) for finding in audit(engine) if finding.violations]


def stored_order_ids(engine: Engine) -> set[int]:
    with engine.connect() as connection:
        return set(connection.scalars(select(orders.c.id)))


def snapshot(engine: Engine) -> dict[str, list[tuple]]:
    """Every row of every table, in primary-key order: equal snapshots mean nothing changed."""
    with engine.connect() as connection:
        return {
            table.name: connection.execute(select(table).order_by(*table.primary_key.columns)).all()
            for table in metadata.sorted_tables
        }


# PostgreSQL publishes a session's statistics within a second of it going idle.
STATISTICS_SETTLE_SECONDS = 1.5
SETTLE_TIMEOUT = 60.0
UNSETTLED_SESSIONS = text(
    "SELECT pid, state, state_change, left(query, 80) FROM pg_stat_activity"
    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
    " AND backend_type = 'client backend'"
    " AND (state <> 'idle' OR state_change > now() - make_interval(secs => :settle))"
)


def deadlocks(engine: Engine) -> int:
    """PostgreSQL's count of deadlocks detected in this database, read once every other
    session has been idle long enough to have published its statistics."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    with engine.connect() as connection:  # one session: its own polls never unsettle it
        while unsettled := connection.execute(
            UNSETTLED_SESSIONS, {"settle": STATISTICS_SETTLE_SECONDS}
        ).all():
            connection.rollback()  # the statistics views are a snapshot per transaction
            assert time.monotonic() < deadline, f"sessions busy for {SETTLE_TIMEOUT} s: {unsettled}"
            time.sleep(0.1)
        return connection.scalar(
            text("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
        )


@dataclass(frozen=True)
class Ledger:
    """An account's cash, its non-zero positions, and the ids of its orders."""

    cash: Decimal
    shares: dict[str, Decimal]
    order_ids: frozenset[int]

    @classmethod
    def of(cls, cash: Decimal, shares: dict[str, Decimal], order_ids) -> "Ledger":
        return cls(cash, {s: n for s, n in sorted(shares.items()) if n}, frozenset(order_ids))


def stored_ledger(engine: Engine, account_id: str) -> Ledger:
    """What the database holds for the account."""
    mine = accounts.c.id == account_id
    with engine.connect() as connection:
        held = select(positions.c.symbol, positions.c.shares)
        return Ledger.of(
            connection.scalar(select(accounts.c.balance).where(mine)),
            dict(connection.execute(held.where(positions.c.account_id == account_id)).all()),
            connection.scalars(select(orders.c.id).where(orders.c.account_id == account_id)),
        )


@dataclass(frozen=True)
class PlacedOrder:
    order_id: int
    symbol: str
    amount: Decimal
    limit: Decimal


def expected_ledger(
    opening: Ledger, placed: list[PlacedOrder], statuses: dict[int, etree._Element]
) -> Ledger:
    """The account as its own replies explain it (SPEC §2's flows), from `opening` on.

    `statuses` maps each order id to its `<status>` reply: open shares stay
    reserved, executions move cash and shares, canceled shares were refunded.
    """
    cash, shares = opening.cash, defaultdict(Decimal, opening.shares)
    for order in placed:
        status = statuses[order.order_id]
        open_shares = sum((Decimal(e.get("shares")) for e in status.iter("open")), Decimal(0))
        fills = [
            (Decimal(e.get("shares")), Decimal(e.get("price"))) for e in status.iter("executed")
        ]
        executed = sum((traded for traded, _ in fills), Decimal(0))
        paid = sum((traded * price for traded, price in fills), Decimal(0))
        if order.amount > 0:
            cash -= paid + open_shares * order.limit
            shares[order.symbol] += executed
        else:
            cash += paid
            shares[order.symbol] -= executed + open_shares
    return Ledger.of(cash, shares, opening.order_ids | {order.order_id for order in placed})
