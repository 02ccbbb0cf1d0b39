"""The real transaction module against the reference model, over random histories.

Hypothesis drives random sequences of creates, mints, buys and sells (fractional
amounts, limits on a small price grid so that orders cross often), queries and
cancels through `Exchange` on PostgreSQL and through `tests/exchange/model.py`,
and requires the same reply to every command and the same balances, positions
and order states after every step, and the same statements, open orders, books
and tapes as the reads show them; the ledger audit must pass after every step
too.

`HYPOTHESIS_PROFILE=thorough` (see tests/conftest.py) explores far more and
longer histories than the bounded default run.
"""

from decimal import Decimal

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import Engine, select

from app.audit import audit
from app.exchange.commands import (
    CancelOrder,
    CreateAccount,
    CreateSymbol,
    ListOrders,
    MintShares,
    PlaceOrder,
    QueryOrder,
    ShowAccount,
    ShowBook,
    ShowTrades,
)
from app.exchange.errors import Rejected
from app.exchange.results import Opened, OrderView
from app.exchange.transactions import Exchange
from app.storage.schema import accounts, orders, positions
from tests.conftest import empty_tables
from tests.exchange import model
from tests.exchange.market import levels
from tests.exchange.model import ModelExchange, Refused

ACCOUNTS = st.sampled_from(["1", "2", "3", "007"])
TRADERS = st.sampled_from(["1", "1", "2", "2", "3"])  # mostly the two set up to trade
SYMBOLS = st.sampled_from(
    ["X", "X", "X", "X", "X", "Y", "Z"]
)  # Z exists only once a rule creates it
SHARES = st.integers(1, 24).map(lambda quarters: Decimal(quarters) / 4)
LIMITS = st.sampled_from([Decimal(price) for price in ("9", "9.5", "10", "10.25", "11")])
BALANCES = st.sampled_from([Decimal(cash) for cash in ("0", "25", "100.5", "1000")])
UNKNOWN_ORDER = 10**9  # no order ever has this id, in either exchange


def reply(call, *args):
    """What a command answered: its value, or the reason it was refused."""
    try:
        return call(*args)
    except (Rejected, Refused) as refusal:
        return refusal.reason


def summary(order: OrderView | model.Order) -> tuple:
    """An order's state as the protocol shows it, times left out (they differ)."""
    if isinstance(order, model.Order):
        canceled = order.canceled if order.canceled else None
        return order.open, canceled, tuple(order.fills)
    canceled = order.canceled.shares if order.canceled else None
    fills = tuple((fill.shares, fill.price) for fill in order.fills)
    return order.open_shares, canceled, fills


def amount(order: model.Order) -> Decimal:
    """The amount as placed, signed: what is open, canceled and executed, all together."""
    shares = order.open + order.canceled + sum((shares for shares, _ in order.fills), Decimal(0))
    return shares if order.is_buy else -shares


class ExchangeAgreesWithModel(RuleBasedStateMachine):
    orders = Bundle("orders")

    def __init__(self, engine: Engine, exchange_engine: Engine):
        super().__init__()
        empty_tables(engine)  # fixtures are not reset between Hypothesis examples
        self.engine = engine
        self.real = Exchange(exchange_engine)
        self.model = ModelExchange()
        self.real_ids: dict[int, int] = {UNKNOWN_ORDER: UNKNOWN_ORDER}

    @initialize()
    def two_traders_and_a_stock(self):
        self.create_symbol("X")
        for account in ("1", "2"):
            self.create_account(account, Decimal(1000))
            self.mint("X", account, Decimal(20))

    # -- commands -------------------------------------------------------------

    @rule(account=ACCOUNTS, balance=BALANCES)
    def create_account(self, account, balance):
        assert reply(self.real.create_account, CreateAccount(account, balance)) == reply(
            self.model.create_account, account, balance
        )

    @rule(symbol=SYMBOLS)
    def create_symbol(self, symbol):
        self.real.create_symbol(CreateSymbol(symbol))
        self.model.create_symbol(symbol)

    @rule(symbol=SYMBOLS, account=ACCOUNTS, shares=SHARES)
    def mint(self, symbol, account, shares):
        assert reply(self.real.mint_shares, MintShares(symbol, account, shares)) == reply(
            self.model.mint, symbol, account, shares
        )

    @rule(target=orders, account=TRADERS, symbol=SYMBOLS, shares=SHARES, limit=LIMITS)
    def buy(self, account, symbol, shares, limit):
        return self._place(account, symbol, shares, limit)

    @rule(target=orders, account=TRADERS, symbol=SYMBOLS, shares=SHARES, limit=LIMITS)
    def sell(self, account, symbol, shares, limit):
        return self._place(account, symbol, -shares, limit)

    @rule(order=orders | st.just(UNKNOWN_ORDER), intruder=st.none() | st.none() | ACCOUNTS)
    def query(self, order, intruder):
        account = intruder or self._owner(order)
        if self._acting_account_exists(account):
            self._same_view(self.real.query_order, QueryOrder, self.model.query, account, order)

    @rule(order=orders | st.just(UNKNOWN_ORDER), intruder=st.none() | st.none() | ACCOUNTS)
    def cancel(self, order, intruder):
        account = intruder or self._owner(order)
        if self._acting_account_exists(account):
            self._same_view(self.real.cancel_order, CancelOrder, self.model.cancel, account, order)

    # -- after every step ---------------------------------------------------------

    @invariant()
    def agrees_with_model(self):
        with self.engine.connect() as connection:
            balances = dict(connection.execute(select(accounts.c.id, accounts.c.balance)).all())
            held = connection.execute(
                select(positions.c.account_id, positions.c.symbol, positions.c.shares).where(
                    positions.c.shares != 0
                )
            ).all()
            book = connection.execute(
                select(orders.c.id, orders.c.open_shares, orders.c.canceled_shares)
            ).all()
        assert balances == self.model.balances
        assert {(row.account_id, row.symbol): row.shares for row in held} == {
            key: shares for key, shares in self.model.positions.items() if shares
        }
        assert {row.id: (row.open_shares, row.canceled_shares) for row in book} == {
            self.real_ids[order.order_id]: (order.open, order.canceled)
            for order in self.model.orders
        }

    @invariant()
    def reads_agree_with_model(self):
        """Statements, open orders, books and tapes, read as a client reads them (SPEC §7)."""
        for account in self.model.balances:
            statement = self.real.account_statement(ShowAccount(account))
            holdings = [(h.symbol, h.shares, h.reserved) for h in statement.holdings]
            assert (statement.balance, statement.reserved, holdings) == self.model.statement(
                account
            )
            listed = self.real.open_orders(ListOrders(account)).orders
            assert [(o.order_id, o.symbol, o.amount, o.limit, o.open_shares) for o in listed] == [
                (self.real_ids[o.order_id], o.symbol, amount(o), o.limit, o.open)
                for o in self.model.open_orders(account)
            ]
        for symbol in self.model.symbols:
            book = self.real.book(ShowBook(symbol, depth=1000))
            assert (levels(book.bids), levels(book.asks)) == self.model.book(symbol)
            tape = self.real.trades(ShowTrades(symbol, limit=1000)).trades
            assert [(trade.shares, trade.price) for trade in tape] == self.model.trades(symbol)

    @invariant()
    def books_balance(self):
        violated = [finding for finding in audit(self.engine) if finding.violations]
        assert not violated, violated

    # -- helpers --------------------------------------------------------------

    def _acting_account_exists(self, account: str) -> bool:
        """The service refuses every transaction of an unknown account before it runs."""
        exists = account in self.model.balances
        assert self.real.account_exists(account) == exists
        return exists

    def _place(self, account, symbol, amount, limit):
        if not self._acting_account_exists(account):
            return multiple()
        real = reply(self.real.place_order, PlaceOrder(account, symbol, amount, limit))
        expected = reply(self.model.place, account, symbol, amount, limit)
        if isinstance(expected, int):
            assert isinstance(real, Opened), f"model opened order {expected}, exchange said {real}"
            fills = next(order.fills for order in self.model.orders if order.order_id == expected)
            assert (real.executions, real.traded_shares) == (
                len(fills),
                sum((shares for shares, _ in fills), Decimal(0)),
            )
            self.real_ids[expected] = real.order_id
            return expected
        assert real == expected
        return multiple()

    def _owner(self, order: int) -> str:
        """Who placed the order; an unknown order is asked about by account 1."""
        owners = {placed.order_id: placed.account for placed in self.model.orders}
        return owners.get(order, "1")

    def _same_view(self, real_call, command, model_call, account, order):
        real = reply(real_call, command(account, self.real_ids[order]))
        expected = reply(model_call, account, order)
        if isinstance(expected, model.Order):
            assert isinstance(real, OrderView), f"model answered {expected}, exchange {real}"
            assert real.order_id == self.real_ids[order]
            assert summary(real) == summary(expected)
        else:
            assert real == expected


# Shrinking a failure replays many histories against PostgreSQL: allow far longer
# than a passing run needs (well under a minute for the default 100 examples).
@pytest.mark.timeout(6 * settings().max_examples)
def test_exchange_agrees_with_model_over_random_histories(schema_engine, exchange_engine):
    run_state_machine_as_test(lambda: ExchangeAgreesWithModel(schema_engine, exchange_engine))
