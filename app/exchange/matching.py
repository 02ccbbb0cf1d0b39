"""The matching rules of SPEC §4 and the money and share flows of §2, in plain Python.

No database here: the transaction module reads the book under the symbol's
lock, asks `match` which resting orders the incoming one takes and `settle`
what every account pays and receives, then writes the outcome in one statement.
"""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from app.exchange.commands import PlaceOrder


@dataclass(frozen=True, slots=True)
class Resting:
    """An open order on the book, as an incoming order sees it."""

    order_id: int
    account_id: str
    price: Decimal
    open_shares: Decimal


@dataclass(frozen=True, slots=True)
class Trade:
    """One execution: `shares` of a resting order taken at its limit, `price`."""

    order_id: int
    account_id: str
    shares: Decimal
    price: Decimal


@dataclass(frozen=True, slots=True)
class Settlement:
    """What an order changes, per account: cash (balance) and shares (position on the symbol).

    Zero changes are left out. The incoming order's reservation is included:
    the buyer's cash or the seller's shares, taken whole when the order is placed.
    """

    cash: dict[str, Decimal]
    shares: dict[str, Decimal]


def match(wanted: Decimal, book: Iterable[Resting]) -> list[Trade]:
    """Take from the resting orders in the order given (best price, then oldest) until filled.

    A resting order partly taken keeps its place for the rest: the caller only
    lowers its open shares.
    """
    trades = []
    for resting in book:
        if wanted == 0:
            break
        shares = min(wanted, resting.open_shares)
        trades.append(Trade(resting.order_id, resting.account_id, shares, resting.price))
        wanted -= shares
    return trades


def settle(order: PlaceOrder, trades: Iterable[Trade]) -> Settlement:
    """The flows of SPEC §2 for an order placed and its executions at the resting limits."""
    cash: dict[str, Decimal] = defaultdict(Decimal)
    shares: dict[str, Decimal] = defaultdict(Decimal)
    is_buy = order.amount > 0
    if is_buy:
        cash[order.account_id] -= order.amount * order.limit
    else:
        shares[order.account_id] += order.amount
    for trade in trades:
        if is_buy:
            buyer, seller, buyer_limit = order.account_id, trade.account_id, order.limit
        else:
            buyer, seller, buyer_limit = trade.account_id, order.account_id, trade.price
        shares[buyer] += trade.shares
        cash[buyer] += trade.shares * (buyer_limit - trade.price)  # unused reservation refunded
        cash[seller] += trade.shares * trade.price
    return Settlement(_nonzero(cash), _nonzero(shares))


def _nonzero(changes: dict[str, Decimal]) -> dict[str, Decimal]:
    return {account: change for account, change in changes.items() if change}
