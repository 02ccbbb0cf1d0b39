"""A small vocabulary for tests that read like the spec: accounts, grants, buys, sells."""

from decimal import Decimal

from sqlalchemy import Engine, select

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
from app.exchange.results import AccountStatement, Book, OpenOrders, OrderView, PriceLevel, Trades
from app.exchange.transactions import Exchange
from app.storage.schema import accounts, positions

WORKED_EXAMPLE = (  # SPEC §4, orders 1 to 6 on symbol X: (account, amount, limit)
    ("1", 300, 125),
    ("2", -100, 130),
    ("1", 200, 127),
    ("2", -500, 128),
    ("2", -200, 140),
    ("1", 400, 125),
)


class Market:
    """Drives the real transaction module; every number may be given as int or str."""

    def __init__(self, exchange: Exchange, engine: Engine):
        self.exchange = exchange
        self.engine = engine

    def account(self, account_id: str, balance="0") -> str:
        self.exchange.create_account(CreateAccount(account_id, Decimal(balance)))
        return account_id

    def grant(self, account_id: str, symbol: str, shares) -> None:
        self.exchange.create_symbol(CreateSymbol(symbol))
        self.exchange.mint_shares(MintShares(symbol, account_id, Decimal(shares)))

    def buy(self, account_id: str, symbol: str, shares, limit) -> int:
        return self.order(account_id, symbol, Decimal(shares), limit)

    def sell(self, account_id: str, symbol: str, shares, limit) -> int:
        return self.order(account_id, symbol, -Decimal(shares), limit)

    def order(self, account_id: str, symbol: str, amount, limit) -> int:
        command = PlaceOrder(account_id, symbol, Decimal(amount), Decimal(limit))
        return self.exchange.place_order(command).order_id

    def query(self, account_id: str, order_id: int) -> OrderView:
        return self.exchange.query_order(QueryOrder(account_id, order_id))

    def cancel(self, account_id: str, order_id: int) -> OrderView:
        return self.exchange.cancel_order(CancelOrder(account_id, order_id))

    def statement(self, account_id: str) -> AccountStatement:
        return self.exchange.account_statement(ShowAccount(account_id))

    def open_orders(self, account_id: str, symbol: str | None = None, after: int = 0) -> OpenOrders:
        return self.exchange.open_orders(ListOrders(account_id, symbol, after))

    def book(self, symbol: str, depth: int = 10) -> Book:
        return self.exchange.book(ShowBook(symbol, depth))

    def trades(self, symbol: str, limit: int = 50) -> Trades:
        return self.exchange.trades(ShowTrades(symbol, limit))

    def balance(self, account_id: str) -> Decimal:
        with self.engine.connect() as connection:
            return connection.execute(
                select(accounts.c.balance).where(accounts.c.id == account_id)
            ).scalar_one()

    def position(self, account_id: str, symbol: str) -> Decimal:
        with self.engine.connect() as connection:
            held = connection.execute(
                select(positions.c.shares).where(
                    positions.c.account_id == account_id, positions.c.symbol == symbol
                )
            ).scalar_one_or_none()
        return held if held is not None else Decimal(0)


def fills(view: OrderView) -> list[tuple[Decimal, Decimal]]:
    """An order's executions as (shares, price) pairs, oldest first."""
    return [(fill.shares, fill.price) for fill in view.fills]


def levels(side: tuple[PriceLevel, ...]) -> list[tuple[Decimal, Decimal, int]]:
    """A side of a book as (price, shares, orders) triples, best first."""
    return [(level.price, level.shares, level.orders) for level in side]
