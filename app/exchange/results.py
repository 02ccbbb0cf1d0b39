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


@dataclass(frozen=True, slots=True)
class Quote:
    """A symbol and its last trade's price and time; neither until it has traded."""

    symbol: str
    price: Decimal | None
    time: int | None


@dataclass(frozen=True, slots=True)
class Quotes:
    """Every symbol, in byte order, with its last trade (SPEC §10's `GET /symbols`)."""

    quotes: tuple[Quote, ...]


Report = AccountStatement | OpenOrders | Book | Trades | Quotes  # what a read answers


@dataclass(frozen=True, slots=True)
class NumberedTrade:
    """A trade with its execution's id, which grows with every trade of a symbol (SPEC §10)."""

    id: int
    trade: Trade


@dataclass(frozen=True, slots=True)
class SymbolChanges:
    """A watched symbol as one poll saw it: its book, the id of its latest trade (0 if it
    never traded), and its trades after the last one its streams had, oldest first."""

    book: Book
    latest_trade_id: int
    trades: tuple[NumberedTrade, ...]


@dataclass(frozen=True, slots=True)
class MarketChanges:
    """One poll's answer: the watched symbols that exist, and for each stream coming back
    (symbol, last trade id) the trades it missed, oldest first."""

    symbols: dict[str, SymbolChanges]
    resumed: dict[tuple[str, int], tuple[NumberedTrade, ...]]


Result = Created | Opened | Status | Canceled | Failed | Report
