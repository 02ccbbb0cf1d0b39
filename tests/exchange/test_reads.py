"""SPEC §7: statements, open orders, books and the tape; one snapshot each, taking no locks."""

import json
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal as D

import pytest
from sqlalchemy import text

from app.audit import audit
from app.exchange import statements
from app.exchange.errors import Reason, Rejected
from app.exchange.results import Holding
from tests.exchange.conftest import CASH, SHARES
from tests.exchange.market import WORKED_EXAMPLE, levels


def place_worked_example(market) -> list[int]:
    return [market.order(account, "X", amount, limit) for account, amount, limit in WORKED_EXAMPLE]


def refusal(call, *args) -> Reason:
    with pytest.raises(Rejected) as refused:
        call(*args)
    return refused.value.reason


# -- the book ------------------------------------------------------------------


def test_book_after_orders_one_to_six_of_the_worked_example(traders):
    place_worked_example(traders)
    book = traders.book("X")
    assert book.symbol == "X"
    assert levels(book.bids) == [(127, 200, 1), (125, 700, 2)]
    assert levels(book.asks) == [(128, 500, 1), (130, 100, 1), (140, 200, 1)]


def test_book_after_order_seven_shows_what_is_left_open(traders):
    place_worked_example(traders)
    traders.sell("2", "X", 400, 124)
    book = traders.book("X")
    assert levels(book.bids) == [(125, 500, 2)]
    assert levels(book.asks) == [(128, 500, 1), (130, 100, 1), (140, 200, 1)]


def test_book_shows_at_most_depth_levels_a_side(traders):
    place_worked_example(traders)
    book = traders.book("X", depth=1)
    assert levels(book.bids) == [(127, 200, 1)]
    assert levels(book.asks) == [(128, 500, 1)]


def test_book_leaves_out_canceled_orders(traders):
    order = traders.buy("1", "X", 10, 5)
    traders.buy("1", "X", D("2.5"), 5)
    traders.cancel("1", order)
    assert levels(traders.book("X").bids) == [(5, D("2.5"), 1)]


def test_book_of_a_symbol_without_orders_is_empty(traders):
    book = traders.book("X")
    assert (book.bids, book.asks) == ((), ())


def test_book_of_an_unknown_symbol_is_refused(traders):
    assert refusal(traders.book, "NOPE") == Reason.NO_SUCH_SYMBOL


def test_book_walks_price_levels_instead_of_reading_every_resting_order(traders, engine):
    """100,000 resting buys on 10,000 prices: the top 10 levels read about 100 of them."""
    rest_many(engine, "1", "buy", 100_000, price="1 + n % 10000")
    plan = generic_plan(engine, statements.BOOK, symbol="X", depth=10)
    assert rows_read(plan, "orders") < 1_000


def rest_many(engine, account: str, side: str, count: int, price: str) -> None:
    """`count` resting orders of one share on X, `price` an SQL expression of their number n.

    Written straight into the table, more than a test could place: they hold
    no reservation, so they serve to check the reads' plans, not the ledger.
    """
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO orders (account_id, symbol, side, shares, limit_price, open_shares)"
                f" SELECT :account, 'X', :side, 1, {price}, 1 FROM generate_series(1, :count) n"
            ),
            {"account": account, "side": side, "count": count},
        )


def generic_plan(engine, statement: statements.Statement, **parameters) -> dict:
    """The executed plan PostgreSQL caches for any parameters (EXPLAIN ANALYZE)."""
    with engine.begin() as connection:
        connection.execute(text("ANALYZE"))
    with engine.connect() as connection:
        cursor = connection.connection.dbapi_connection.cursor()
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        cursor.execute(statement.definition)
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {statement.call}", parameters)
        [[plan]] = cursor.fetchall()
        cursor.execute(f"DEALLOCATE {statement.name}")
    return (plan if isinstance(plan, list) else json.loads(plan))[0]["Plan"]


def rows_read(node: dict, table: str) -> float:
    """Rows every scan of `table` in the plan read, kept or filtered out, over all its loops."""
    own = 0
    if node.get("Relation Name") == table:
        own = (node["Actual Rows"] + node.get("Rows Removed by Filter", 0)) * node["Actual Loops"]
    return own + sum(rows_read(child, table) for child in node.get("Plans", ()))


def pages_read(node: dict, table: str) -> int:
    """Pages every scan of `table` in the plan touched, of the table and of its index."""
    own = 0
    if node.get("Relation Name") == table:
        own = node["Shared Hit Blocks"] + node["Shared Read Blocks"]
    return own + sum(pages_read(child, table) for child in node.get("Plans", ()))


# -- the tape ------------------------------------------------------------------


def test_tape_after_order_seven_is_newest_first(traders):
    place_worked_example(traders)
    traders.sell("2", "X", 400, 124)
    tape = traders.trades("X").trades
    assert [(trade.shares, trade.price) for trade in tape] == [(200, 125), (200, 127)]
    assert all(abs(trade.time - time.time()) < 60 for trade in tape)


def test_tape_shows_at_most_limit_trades(traders):
    for price in (10, 11, 12):
        traders.sell("2", "X", 1, price)
        traders.buy("1", "X", 1, price)
    assert [trade.price for trade in traders.trades("X", limit=2).trades] == [12, 11]


def test_tape_of_a_symbol_without_trades_is_empty(traders):
    traders.buy("1", "X", 1, 1)
    assert traders.trades("X").trades == ()


def test_tape_of_a_rarely_traded_symbol_reads_only_its_own_executions(traders, engine):
    """X traded once long ago, Y 100,000 times since: X's tape never walks through Y's."""
    traders.sell("2", "X", 1, 10)
    traders.buy("1", "X", 1, 10)
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO symbols (symbol) VALUES ('Y')"))
        connection.execute(
            text(
                "INSERT INTO executions (symbol, buy_order_id, sell_order_id, shares, price)"
                " SELECT 'Y', 2, 1, 1, 10 FROM generate_series(1, 100000)"
            )
        )
    plan = generic_plan(engine, statements.TRADES, symbol="X", limit=50)
    assert rows_read(plan, "executions") <= 1


def test_tape_of_an_unknown_symbol_is_refused(traders):
    assert refusal(traders.trades, "NOPE") == Reason.NO_SUCH_SYMBOL


# -- the statement -------------------------------------------------------------


def test_statement_shows_spendable_cash_and_cash_held_by_open_buys(traders):
    traders.buy("1", "X", 10, D("2.5"))
    statement = traders.statement("1")
    assert (statement.account_id, statement.balance, statement.reserved) == ("1", CASH - 25, 25)


def test_statement_shows_spendable_and_reserved_shares_per_symbol_in_byte_order(traders):
    for symbol in ("b", "a", "B"):
        traders.grant("1", symbol, 5)
    traders.sell("1", "a", 2, 100)
    assert traders.statement("1").holdings == (
        Holding("B", D(5), D(0)),
        Holding("a", D(3), D(2)),
        Holding("b", D(5), D(0)),
    )


def test_statement_lists_a_symbol_whose_shares_are_all_reserved(traders):
    traders.sell("2", "X", SHARES, 100)
    assert traders.statement("2").holdings == (Holding("X", D(0), D(SHARES)),)


def test_statement_leaves_out_a_symbol_with_nothing_held_or_reserved(traders):
    traders.sell("2", "X", SHARES, 100)
    traders.buy("1", "X", SHARES, 100)
    assert traders.statement("2").holdings == ()
    assert traders.statement("1").holdings == (Holding("X", D(SHARES), D(0)),)


def test_statement_balance_plus_reserved_is_the_accounts_own_ledger(traders, engine):
    place_worked_example(traders)
    traders.sell("2", "X", 400, 124)
    buyer = traders.statement("1")
    assert buyer.balance + buyer.reserved == CASH - 200 * 127 - 200 * 125
    assert buyer.reserved == 100 * 125 + 400 * 125
    seller = traders.statement("2")
    assert seller.balance + seller.reserved == CASH + 200 * 127 + 200 * 125
    assert seller.holdings == (Holding("X", D(SHARES - 400 - 800), D(800)),)
    checked = {finding.check: finding.violations for finding in audit(engine)}
    assert checked["statement-cash"] == checked["statement-shares"] == []


def test_statement_of_an_unknown_account_is_refused(traders):
    assert refusal(traders.statement, "404") == Reason.NO_SUCH_ACCOUNT


# -- open orders ---------------------------------------------------------------


def test_open_orders_oldest_first_with_signed_amounts_and_open_shares(traders):
    ids = place_worked_example(traders)
    traders.sell("2", "X", 400, 124)
    buys = traders.open_orders("1")
    assert [(o.order_id, o.symbol, o.amount, o.limit, o.open_shares) for o in buys.orders] == [
        (ids[0], "X", 300, 125, 100),
        (ids[5], "X", 400, 125, 400),
    ]
    sells = traders.open_orders("2")
    assert [(o.order_id, o.amount) for o in sells.orders] == [
        (ids[1], -100),
        (ids[3], -500),
        (ids[4], -200),
    ]
    assert all(abs(order.time - time.time()) < 60 for order in sells.orders)
    assert not buys.more and not sells.more


def test_open_orders_leave_out_canceled_orders(traders):
    canceled = traders.buy("1", "X", 1, 1)
    kept = traders.buy("1", "X", 1, 1)
    traders.cancel("1", canceled)
    assert [order.order_id for order in traders.open_orders("1").orders] == [kept]


def test_open_orders_filtered_by_symbol(traders):
    traders.grant("1", "Y", 5)
    traders.buy("1", "X", 1, 1)
    on_y = traders.sell("1", "Y", 1, 1)
    assert [order.order_id for order in traders.open_orders("1", "Y").orders] == [on_y]


def test_open_orders_after_an_id_start_past_it(traders):
    ids = [traders.buy("1", "X", 1, 1) for _ in range(3)]
    assert [order.order_id for order in traders.open_orders("1", after=ids[0]).orders] == ids[1:]


def test_open_orders_page_through_more_than_a_thousand(traders):
    placed = [traders.buy("1", "X", 1, 1) for _ in range(statements.OPEN_ORDERS_PAGE + 5)]
    first = traders.open_orders("1")
    assert first.more and len(first.orders) == statements.OPEN_ORDERS_PAGE
    rest = traders.open_orders("1", after=first.orders[-1].order_id)
    assert not rest.more
    assert [order.order_id for order in first.orders + rest.orders] == placed


def test_open_orders_of_a_quiet_account_read_only_its_own(traders, engine):
    """Account 1 placed one order long ago, account 2 100,000 since: 1's page skips them."""
    traders.buy("1", "X", 1, 1)
    rest_many(engine, "2", "sell", 100_000, price="1000")
    parameters = {"account_id": "1", "symbol": None, "after": 0, "rows": 1001}
    assert rows_read(generic_plan(engine, statements.OPEN_ORDERS, **parameters), "orders") <= 1


def test_a_page_of_open_orders_starts_where_the_last_one_ended(traders, engine):
    """The last page of 100,000 open orders reads that page, not the 99,000 before it."""
    rest_many(engine, "1", "buy", 100_000, price="1")
    parameters = {"account_id": "1", "symbol": None, "after": 99_000, "rows": 1001}
    plan = generic_plan(engine, statements.OPEN_ORDERS, **parameters)
    assert rows_read(plan, "orders") <= 1001
    assert pages_read(plan, "orders") < 100  # the index's 99,000 entries before: 300 pages


def test_another_accounts_open_orders_are_never_listed(traders):
    traders.sell("2", "X", 1, 100)
    mine = traders.buy("1", "X", 1, 1)
    traders.sell("2", "X", 1, 100)
    assert [order.order_id for order in traders.open_orders("1").orders] == [mine]
    assert traders.open_orders("1", after=mine).orders == ()


def test_open_orders_on_an_unknown_symbol_are_refused(traders):
    assert refusal(traders.open_orders, "1", "NOPE") == Reason.NO_SUCH_SYMBOL


def test_open_orders_of_an_unknown_account_are_refused(traders):
    assert refusal(traders.open_orders, "404") == Reason.NO_SUCH_ACCOUNT


# -- isolation from matching ---------------------------------------------------


def test_reads_never_wait_for_the_locks_matching_holds(traders, engine):
    """Every row an order would lock, locked by another transaction: each read still answers."""
    traders.buy("1", "X", 1, 1)
    with engine.connect() as holder, holder.begin():
        holder.execute(text("SELECT * FROM symbols FOR UPDATE"))
        holder.execute(text("SELECT * FROM accounts FOR UPDATE"))
        holder.execute(text("SELECT * FROM orders FOR UPDATE"))
        reads = (
            lambda: traders.book("X"),
            lambda: traders.trades("X"),
            lambda: traders.statement("1"),
            lambda: traders.open_orders("1", "X"),
        )
        with ThreadPoolExecutor(len(reads)) as pool:
            answers = [pool.submit(read) for read in reads]
            assert all(answer.result(timeout=10) for answer in answers)
