"""Ledger audit: checks on a live database that the books balance (SPEC §2).

`python -m app.audit` prints one line per check and exits non-zero when any
check finds a violation. Every check is one read-only SQL query in a single
repeatable-read snapshot, so the audit is safe to run while the exchange trades.
"""

import sys
from dataclasses import dataclass

from sqlalchemy import Engine, text

from app.config import Config
from app.storage.engine import database_engine

# Each query returns the rows that violate its rule; an empty result is a pass.
CHECKS = {
    "cash is conserved (balances + open buy reservations = deposits)": """
        SELECT total_deposits, total_balances, reserved
          FROM (SELECT coalesce(sum(deposited), 0) AS total_deposits,
                       coalesce(sum(balance), 0) AS total_balances FROM accounts) a,
               (SELECT coalesce(sum(open_shares * limit_price), 0) AS reserved
                  FROM orders WHERE side = 'buy') o
         WHERE total_deposits <> total_balances + reserved""",
    "shares are conserved per symbol (positions + open sells = minted)": """
        SELECT s.symbol, minted, held, offered
          FROM symbols s
          CROSS JOIN LATERAL (SELECT coalesce(sum(shares), 0) AS minted
                                FROM mints m WHERE m.symbol = s.symbol) m
          CROSS JOIN LATERAL (SELECT coalesce(sum(shares), 0) AS held
                                FROM positions p WHERE p.symbol = s.symbol) p
          CROSS JOIN LATERAL (SELECT coalesce(sum(open_shares), 0) AS offered
                                FROM orders o WHERE o.symbol = s.symbol AND o.side = 'sell') o
         WHERE minted <> held + offered""",
    "no balance is negative": "SELECT id, balance FROM accounts WHERE balance < 0",
    "no position is negative": "SELECT account_id, symbol, shares FROM positions WHERE shares < 0",
    "every order's shares add up (open + executed + canceled = amount)": """
        SELECT id FROM orders
         WHERE open_shares < 0 OR executed_shares < 0 OR canceled_shares < 0
            OR open_shares + executed_shares + canceled_shares <> shares""",
    "every order's executed shares equal its executions": """
        SELECT o.id, o.executed_shares, coalesce(sum(e.shares), 0) AS traded
          FROM orders o
          LEFT JOIN executions e ON o.id IN (e.buy_order_id, e.sell_order_id)
         GROUP BY o.id
        HAVING o.executed_shares <> coalesce(sum(e.shares), 0)""",
    "every execution pairs a buy and a sell of its symbol at the resting order's limit": """
        SELECT e.id
          FROM executions e
          JOIN orders b ON b.id = e.buy_order_id
          JOIN orders s ON s.id = e.sell_order_id
         WHERE b.side <> 'buy' OR s.side <> 'sell'
            OR b.symbol <> e.symbol OR s.symbol <> e.symbol
            OR NOT (s.limit_price <= e.price AND e.price <= b.limit_price)
            OR e.price <> CASE WHEN b.id < s.id THEN b.limit_price ELSE s.limit_price END""",
    "no book is crossed at rest (best buy < best sell)": """
        SELECT symbol FROM orders WHERE open_shares > 0
         GROUP BY symbol
        HAVING max(limit_price) FILTER (WHERE side = 'buy')
            >= min(limit_price) FILTER (WHERE side = 'sell')""",
}


@dataclass(frozen=True)
class Finding:
    check: str
    violations: list[tuple]


def audit(engine: Engine) -> list[Finding]:
    """Run every check in one consistent snapshot; return each check with its violations."""
    with engine.connect().execution_options(isolation_level="REPEATABLE READ") as connection:
        with connection.begin():
            connection.execute(text("SET TRANSACTION READ ONLY"))
            return [
                Finding(name, [tuple(row) for row in connection.execute(text(query)).fetchmany(10)])
                for name, query in CHECKS.items()
            ]


def main() -> int:
    engine = database_engine(Config.from_env().database_url, pool_size=1)
    findings = audit(engine)
    for finding in findings:
        print(f"{'FAIL' if finding.violations else 'ok  '}  {finding.check}")
        for violation in finding.violations:
            print(f"        {violation}")
    failed = sum(1 for finding in findings if finding.violations)
    print(f"{len(findings) - failed} checks hold, {failed} violated")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
