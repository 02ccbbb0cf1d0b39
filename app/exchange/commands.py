"""What a client can ask the exchange to do, already validated.

The protocol layer turns request documents into these value objects; the
transaction module executes them. Numbers are `Decimal`, ids are exact text.
"""

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class CreateAccount:
    account_id: str
    balance: Decimal


@dataclass(frozen=True, slots=True)
class CreateSymbol:
    symbol: str


@dataclass(frozen=True, slots=True)
class MintShares:
    symbol: str
    account_id: str
    shares: Decimal


@dataclass(frozen=True, slots=True)
class PlaceOrder:
    """Buy when `amount` > 0, sell when < 0; `limit` is the price per share."""

    account_id: str
    symbol: str
    amount: Decimal
    limit: Decimal


@dataclass(frozen=True, slots=True)
class QueryOrder:
    account_id: str
    order_id: int


@dataclass(frozen=True, slots=True)
class CancelOrder:
    account_id: str
    order_id: int


BOOK_DEPTH = 10  # price levels a side, unless the request says (SPEC §7)
TAPE_LENGTH = 50  # trades, unless the request says


@dataclass(frozen=True, slots=True)
class ShowAccount:
    """The account's statement: cash and positions, each with what its open orders hold."""

    account_id: str


@dataclass(frozen=True, slots=True)
class ListOrders:
    """The account's open orders, oldest first, on `symbol` only when given, ids above `after`."""

    account_id: str
    symbol: str | None = None
    after: int = 0


@dataclass(frozen=True, slots=True)
class ShowBook:
    """The symbol's open orders by price level, `depth` levels a side. Public: no account."""

    symbol: str
    depth: int = BOOK_DEPTH


@dataclass(frozen=True, slots=True)
class ShowTrades:
    """The symbol's `limit` most recent executions, newest first. Public: no account."""

    symbol: str
    limit: int = TAPE_LENGTH


Read = ShowAccount | ListOrders | ShowBook | ShowTrades


@dataclass(frozen=True, slots=True)
class WatchedSymbol:
    """A symbol some live streams follow (SPEC §10): the book's depth they want, and the
    last trade they have, None for a symbol followed from now on."""

    symbol: str
    depth: int
    after: int | None


@dataclass(frozen=True, slots=True)
class PollMarket:
    """One look at what changed on the watched symbols, for every stream at once.

    `resumed` are streams coming back with the last trade they got: (symbol, trade id).
    """

    watched: tuple[WatchedSymbol, ...]
    resumed: tuple[tuple[str, int], ...] = ()


Command = CreateAccount | CreateSymbol | MintShares | PlaceOrder | QueryOrder | CancelOrder | Read


Echo = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Item:
    """One child of a request: a command to run, or the problem that stops it.

    `echo` holds the request attributes its reply repeats, untouched by the
    exchange. A `CreateSymbol` item has no reply of its own: the share grants
    inside its `<symbol>` element answer instead.
    """

    echo: Echo
    command: Command | None = None
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class Request:
    """A whole request document, its items in document order.

    `acting_account` is set for `<transactions>`: unless that account exists,
    every item fails and nothing else happens. `kind` names the root element.
    """

    items: tuple[Item, ...]
    acting_account: str | None = None
    kind: str = "create"
