"""A small vocabulary for tests that read like the spec: accounts, grants, buys, sells."""

from decimal import Decimal

from sqlalchemy import Engine, select

from app.exchange.commands import (
    CancelOrder,
    CreateAccount,
    CreateSymbol,
    MintShares,
    PlaceOrder,
    QueryOrder,
)
from app.exchange.results import OrderView
from app.exchange.transactions import Exchange
from app.storage.schema import accounts, positions


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
