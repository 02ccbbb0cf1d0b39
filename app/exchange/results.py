"""What the exchange answers for each command, independent of the wire format."""

from dataclasses import dataclass, field
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution as seen from one of its two orders."""

    shares: Decimal
    price: Decimal
    time: int  # whole seconds since the Unix epoch


@dataclass(frozen=True, slots=True)
class Cancellation:
    shares: Decimal
    time: int


@dataclass(frozen=True, slots=True)
class OrderView:
    """An order's state: open or canceled shares (never both), then fills, oldest first."""

    order_id: int
    open_shares: Decimal
    canceled: Cancellation | None
    fills: tuple[Fill, ...]


@dataclass(frozen=True, slots=True)
class Created:
    pass


@dataclass(frozen=True, slots=True)
class Opened:
    """An order placed; what it executed on arrival is not in the reply, only in metrics."""

    order_id: int
    executions: int = 0
    traded_shares: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class Status:
    order: OrderView


@dataclass(frozen=True, slots=True)
class Canceled:
    order: OrderView


@dataclass(frozen=True, slots=True)
class Failed:
    reason: str
    cause: str | None = field(default=None, compare=False)  # for the logs, never the reply


@dataclass(frozen=True, slots=True)
class Holding:
    """One symbol of a statement: spendable shares, and shares held by open sell orders."""

    symbol: str
    shares: Decimal
    reserved: Decimal


@dataclass(frozen=True, slots=True)
class AccountStatement:
    """Spendable cash, cash held by open buy orders, and holdings by symbol (byte order)."""

    account_id: str
    balance: Decimal
    reserved: Decimal
    holdings: tuple[Holding, ...]


@dataclass(frozen=True, slots=True)
class OpenOrder:
    """`amount` is signed as placed (negative for a sell); `open_shares` is positive."""

    order_id: int
    symbol: str
    amount: Decimal
    limit: Decimal
    open_shares: Decimal
    time: int  # when the order was placed


@dataclass(frozen=True, slots=True)
class OpenOrders:
    """A page of open orders, oldest first; `more` when orders after the last one remain."""

    orders: tuple[OpenOrder, ...]
    more: bool


@dataclass(frozen=True, slots=True)
class PriceLevel:
    price: Decimal
    shares: Decimal
    orders: int


@dataclass(frozen=True, slots=True)
class Book:
    """Bids dearest first, asks cheapest first."""

    symbol: str
    bids: tuple[PriceLevel, ...]
    asks: tuple[PriceLevel, ...]


@dataclass(frozen=True, slots=True)
class Trade:
    shares: Decimal
    price: Decimal
    time: int


@dataclass(frozen=True, slots=True)
class Trades:
    """The symbol's tape, newest first; no account or order ids: market data is public."""

    symbol: str
    trades: tuple[Trade, ...]


Report = AccountStatement | OpenOrders | Book | Trades  # what a read answers

Result = Created | Opened | Status | Canceled | Failed | Report
