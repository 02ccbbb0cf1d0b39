"""Ledger audit: checks on a live database that the books balance (SPEC §2).

`python -m app.audit` prints one line per check, with up to ten violating
rows under a failed one, and exits non-zero when any check finds a violation.
Every check is one read-only SQL query in a single repeatable-read snapshot,
so the audit is safe to run while the exchange trades.
"""

import sys
from dataclasses import dataclass

from sqlalchemy import Engine, text
from sqlalchemy.dialects import postgresql

from app.config import Config
from app.exchange.statements import statements_with_holdings
from app.storage.engine import database_engine


@dataclass(frozen=True)
class Check:
    name: str  # short, for reports and tests
    rule: str  # what must hold, in the words of SPEC §2-4
    query: str  # returns the rows that violate the rule; no rows is a pass


# Every account's cash and shares as its own trades moved them: what it was given
# (deposit, mints), less what it paid, plus what it received, at execution prices.
CASH_TRADED = """
                 SELECT b.account_id, -e.shares * e.price
                   FROM executions e JOIN orders b ON b.id = e.buy_order_id
                 UNION ALL
                 SELECT s.account_id, e.shares * e.price
                   FROM executions e JOIN orders s ON s.id = e.sell_order_id"""
SHARES_TRADED = """
                 SELECT s.account_id, e.symbol, -e.shares
                   FROM executions e JOIN orders s ON s.id = e.sell_order_id
                 UNION ALL
                 SELECT b.account_id, e.symbol, e.shares
                   FROM executions e JOIN orders b ON b.id = e.buy_order_id"""

# The very query the service answers `<account/>` with, for every account at once.
STATEMENTS = str(
    statements_with_holdings().compile(
        dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}
    )
)

CHECKS = (
    Check(
        "cash-conserved",
        "cash is conserved (balances + open buy reservations = deposits)",
        """
        SELECT total_deposits, total_balances, reserved
          FROM (SELECT coalesce(sum(deposited), 0) AS total_deposits,
                       coalesce(sum(balance), 0) AS total_balances FROM accounts) a,
               (SELECT coalesce(sum(open_shares * limit_price), 0) AS reserved
                  FROM orders WHERE side = 'buy') o
         WHERE total_deposits <> total_balances + reserved""",
    ),
    Check(
        "shares-conserved",
        "shares are conserved per symbol (positions + open sells = minted)",
        """
        SELECT s.symbol, minted, held, offered
          FROM symbols s
          CROSS JOIN LATERAL (SELECT coalesce(sum(shares), 0) AS minted
                                FROM mints m WHERE m.symbol = s.symbol) m
          CROSS JOIN LATERAL (SELECT coalesce(sum(shares), 0) AS held
                                FROM positions p WHERE p.symbol = s.symbol) p
          CROSS JOIN LATERAL (SELECT coalesce(sum(open_shares), 0) AS offered
                                FROM orders o WHERE o.symbol = s.symbol AND o.side = 'sell') o
         WHERE minted <> held + offered""",
    ),
    Check(
        "balance-ledger",
        "every balance = deposit - open buy reservations - bought + sold, at execution prices",
        """
        WITH flows (account_id, cash) AS (
                 SELECT id, deposited FROM accounts
                 UNION ALL
                 SELECT account_id, -open_shares * limit_price FROM orders WHERE side = 'buy'
                 UNION ALL"""
        + CASH_TRADED
        + """),
             expected AS (SELECT account_id, sum(cash) AS balance FROM flows GROUP BY account_id)
        SELECT a.id, a.balance, x.balance AS expected
          FROM accounts a JOIN expected x ON x.account_id = a.id
         WHERE a.balance <> x.balance""",
    ),
    Check(
        "position-ledger",
        "every position = minted - open sell reservations - sold + bought",
        """
        WITH flows (account_id, symbol, shares) AS (
                 SELECT account_id, symbol, shares FROM mints
                 UNION ALL
                 SELECT account_id, symbol, -open_shares FROM orders WHERE side = 'sell'
                 UNION ALL"""
        + SHARES_TRADED
        + """),
             expected AS (SELECT account_id, symbol, sum(shares) AS shares
                            FROM flows GROUP BY account_id, symbol)
        SELECT coalesce(p.account_id, x.account_id), coalesce(p.symbol, x.symbol),
               p.shares, x.shares AS expected
          FROM positions p
          FULL JOIN expected x ON x.account_id = p.account_id AND x.symbol = p.symbol
         WHERE coalesce(p.shares, 0) <> coalesce(x.shares, 0)""",
    ),
    Check(
        "statement-cash",
        "every statement's balance + reserved = deposit - bought + sold, at execution prices",
        f"""
        WITH statements AS ({STATEMENTS}),
             flows (account_id, cash) AS (
                 SELECT id, deposited FROM accounts
                 UNION ALL{CASH_TRADED}),
             ledger AS (SELECT account_id, sum(cash) AS cash FROM flows GROUP BY account_id)
        SELECT DISTINCT s.account_id, s.balance, s.reserved, l.cash AS expected
          FROM statements s JOIN ledger l ON l.account_id = s.account_id
         WHERE s.balance + s.reserved <> l.cash""",
    ),
    Check(
        "statement-shares",
        "every statement's shares + reserved = minted - sold + bought, per symbol",
        f"""
        WITH statements AS ({STATEMENTS}),
             flows (account_id, symbol, shares) AS (
                 SELECT account_id, symbol, shares FROM mints
                 UNION ALL{SHARES_TRADED}),
             ledger AS (SELECT account_id, symbol, sum(shares) AS shares
                          FROM flows GROUP BY account_id, symbol)
        SELECT coalesce(s.account_id, l.account_id), coalesce(s.symbol, l.symbol),
               s.shares, s.reserved_shares, l.shares AS expected
          FROM (SELECT * FROM statements WHERE symbol IS NOT NULL) s
          FULL JOIN ledger l ON l.account_id = s.account_id AND l.symbol = s.symbol
         WHERE coalesce(s.shares + s.reserved_shares, 0) <> coalesce(l.shares, 0)""",
    ),
    Check(
        "no-negative-balance",
        "no balance is negative",
        "SELECT id, balance FROM accounts WHERE balance < 0",
    ),
    Check(
        "no-negative-position",
        "no position is negative",
        "SELECT account_id, symbol, shares FROM positions WHERE shares < 0",
    ),
    Check(
        "order-shares",
        "every order's shares add up (open + executed + canceled = amount, none negative)",
        """
        SELECT id, shares, open_shares, executed_shares, canceled_shares FROM orders
         WHERE open_shares < 0 OR executed_shares < 0 OR canceled_shares < 0
            OR open_shares + executed_shares + canceled_shares <> shares""",
    ),
    Check(
        "order-executions",
        "every order's executed shares equal the shares of its executions",
        """
        SELECT o.id, o.executed_shares, coalesce(sum(e.shares), 0) AS traded
          FROM orders o
          LEFT JOIN executions e ON o.id IN (e.buy_order_id, e.sell_order_id)
         GROUP BY o.id
        HAVING o.executed_shares <> coalesce(sum(e.shares), 0)""",
    ),
    Check(
        "execution-legs",
        "every execution joins a buy and a sell, both of the execution's symbol",
        """
        SELECT e.id, b.side, s.side, e.symbol, b.symbol, s.symbol
          FROM executions e
          JOIN orders b ON b.id = e.buy_order_id
          JOIN orders s ON s.id = e.sell_order_id
         WHERE b.side <> 'buy' OR s.side <> 'sell'
            OR b.symbol <> e.symbol OR s.symbol <> e.symbol""",
    ),
    Check(
        "execution-within-limits",
        "every execution's price lies between the sell limit and the buy limit",
        """
        SELECT e.id, s.limit_price AS sell_limit, e.price, b.limit_price AS buy_limit
          FROM executions e
          JOIN orders b ON b.id = e.buy_order_id
          JOIN orders s ON s.id = e.sell_order_id
         WHERE NOT (s.limit_price <= e.price AND e.price <= b.limit_price)""",
    ),
    Check(
        "execution-at-resting-limit",
        "every execution's price is the limit of the resting (earlier) order",
        # Order ids are drawn under the symbol's lock, so the smaller id arrived first.
        """
        SELECT e.id, e.price, r.id AS resting_id, r.limit_price AS resting_limit
          FROM executions e
          JOIN orders r ON r.id = least(e.buy_order_id, e.sell_order_id)
         WHERE e.price <> r.limit_price""",
    ),
    Check(
        "book-not-crossed",
        "no book is crossed at rest (best buy < best sell)",
        """
        SELECT symbol,
               max(limit_price) FILTER (WHERE side = 'buy') AS best_buy,
               min(limit_price) FILTER (WHERE side = 'sell') AS best_sell
          FROM orders WHERE open_shares > 0
         GROUP BY symbol
        HAVING max(limit_price) FILTER (WHERE side = 'buy')
            >= min(limit_price) FILTER (WHERE side = 'sell')""",
    ),
)


@dataclass(frozen=True)
class Finding:
    check: str
    rule: str
    violations: list[tuple]


def audit(engine: Engine) -> list[Finding]:
    """Run every check in one consistent snapshot; return each check with its violations."""
    with engine.connect().execution_options(isolation_level="REPEATABLE READ") as connection:
        with connection.begin():
            connection.execute(text("SET TRANSACTION READ ONLY"))
            return [
                Finding(
                    check.name,
                    check.rule,
                    [tuple(row) for row in connection.execute(text(check.query)).fetchmany(10)],
                )
                for check in CHECKS
            ]


def main() -> int:
    engine = database_engine(Config.from_env().database_url, pool_size=1)
    findings = audit(engine)
    for finding in findings:
        verdict = "FAIL" if finding.violations else "ok  "
        print(f"{verdict}  {finding.check:<27} {finding.rule}")
        for violation in finding.violations:
            print(f"        {violation}")
    failed = sum(1 for finding in findings if finding.violations)
    print(f"{len(findings) - failed} checks hold, {failed} violated")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
