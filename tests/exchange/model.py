"""A reference exchange in plain Python: SPEC §§2-4 written as directly as possible.

Used only by tests, as the oracle the real transaction module is compared
with. Readable over fast: the book is a list scanned from start to end, and
every money or share flow is one line next to the SPEC table row it states.
"""

from dataclasses import dataclass, field
from decimal import Decimal

from app.exchange.errors import Reason


class Refused(Exception):
    """The model's refusal; compared with the real one on its reason only."""

    def __init__(self, reason: Reason):
        super().__init__(reason.name)
        self.reason = reason


@dataclass
class Order:
    order_id: int  # ids grow in arrival order, so the id is the time priority
    account: str
    symbol: str
    is_buy: bool
    limit: Decimal
    open: Decimal
    canceled: Decimal = Decimal(0)
    fills: list[tuple[Decimal, Decimal]] = field(default_factory=list)  # (shares, price)


@dataclass
class ModelExchange:
    balances: dict[str, Decimal] = field(default_factory=dict)
    positions: dict[tuple[str, str], Decimal] = field(default_factory=dict)
    symbols: set[str] = field(default_factory=set)
    orders: list[Order] = field(default_factory=list)
    tape: list[tuple[str, Decimal, Decimal]] = field(
        default_factory=list
    )  # (symbol, shares, price)

    # -- §3.1 create ----------------------------------------------------------

    def create_account(self, account: str, balance: Decimal) -> None:
        if account in self.balances:
            raise Refused(Reason.ACCOUNT_EXISTS)
        self.balances[account] = balance

    def create_symbol(self, symbol: str) -> None:
        self.symbols.add(symbol)

    def mint(self, symbol: str, account: str, shares: Decimal) -> None:
        if symbol not in self.symbols:
            raise Refused(Reason.NO_SUCH_SYMBOL)
        if account not in self.balances:
            raise Refused(Reason.NO_SUCH_ACCOUNT)
        self._add_position(account, symbol, shares)

    # -- §3.2 transactions ----------------------------------------------------

    def place(self, account: str, symbol: str, amount: Decimal, limit: Decimal) -> int:
        if symbol not in self.symbols:
            raise Refused(Reason.NO_SUCH_SYMBOL)
        is_buy, shares = amount > 0, abs(amount)
        if is_buy:
            if self.balances[account] < shares * limit:
                raise Refused(Reason.INSUFFICIENT_FUNDS)
            self.balances[account] -= shares * limit  # buy order placed: reserve amount × limit
        else:
            if self.position(account, symbol) < shares:
                raise Refused(Reason.INSUFFICIENT_SHARES)
            self._add_position(account, symbol, -shares)  # sell order placed: reserve shares
        incoming = Order(len(self.orders) + 1, account, symbol, is_buy, limit, shares)
        while incoming.open > 0:
            resting = self._best_resting_order_crossing(incoming)
            if resting is None:
                break
            self._execute(incoming, resting)
        self.orders.append(incoming)
        return incoming.order_id

    def query(self, account: str, order_id: int) -> Order:
        return self._own_order(account, order_id)

    def cancel(self, account: str, order_id: int) -> Order:
        order = self._own_order(account, order_id)
        if order.open == 0:
            raise Refused(Reason.NOTHING_OPEN)
        if order.is_buy:
            self.balances[account] += order.open * order.limit  # cancel of a buy: refund
        else:
            self._add_position(account, order.symbol, order.open)  # cancel of a sell
        order.canceled, order.open = order.open, Decimal(0)
        return order

    def position(self, account: str, symbol: str) -> Decimal:
        return self.positions.get((account, symbol), Decimal(0))

    # -- §4 matching ----------------------------------------------------------

    def _best_resting_order_crossing(self, incoming: Order) -> Order | None:
        """Best price first (lowest sell for a buy, highest buy for a sell), then oldest."""
        crossing = [
            order
            for order in self.orders
            if order.symbol == incoming.symbol
            and order.is_buy != incoming.is_buy
            and order.open > 0
            and (
                order.limit <= incoming.limit if incoming.is_buy else order.limit >= incoming.limit
            )
        ]
        if not crossing:
            return None
        if incoming.is_buy:
            return min(crossing, key=lambda order: (order.limit, order.order_id))
        return min(crossing, key=lambda order: (-order.limit, order.order_id))

    def _execute(self, incoming: Order, resting: Order) -> None:
        shares = min(incoming.open, resting.open)
        price = resting.limit  # the resting order's limit
        buy, sell = (incoming, resting) if incoming.is_buy else (resting, incoming)
        self._add_position(buy.account, buy.symbol, shares)
        self.balances[buy.account] += shares * (buy.limit - price)  # unused reservation back
        self.balances[sell.account] += shares * price
        for order in (incoming, resting):
            order.open -= shares
            order.fills.append((shares, price))
        self.tape.append((incoming.symbol, shares, price))

    # -- §7 reads -------------------------------------------------------------

    def statement(self, account: str) -> tuple[Decimal, Decimal, list[tuple]]:
        """Balance, cash held by open buys, and holdings (symbol, shares, held by open sells)."""
        mine = self.open_orders(account)
        reserved = sum((o.open * o.limit for o in mine if o.is_buy), Decimal(0))
        held = {
            symbol: shares for (owner, symbol), shares in self.positions.items() if owner == account
        }
        holdings = []
        for symbol in sorted(held, key=str.encode):  # byte order
            offered = sum((o.open for o in mine if not o.is_buy and o.symbol == symbol), Decimal(0))
            if held[symbol] or offered:
                holdings.append((symbol, held[symbol], offered))
        return self.balances[account], reserved, holdings

    def open_orders(self, account: str) -> list[Order]:
        """Oldest first: ids grow in arrival order."""
        return [order for order in self.orders if order.account == account and order.open > 0]

    def book(self, symbol: str) -> tuple[list[tuple], list[tuple]]:
        """(price, open shares, orders) per level: bids dearest first, asks cheapest first."""
        sides = {True: {}, False: {}}
        for order in self.orders:
            if order.symbol == symbol and order.open > 0:
                shares, count = sides[order.is_buy].get(order.limit, (Decimal(0), 0))
                sides[order.is_buy][order.limit] = (shares + order.open, count + 1)
        bids = [(price, *level) for price, level in sorted(sides[True].items(), reverse=True)]
        asks = [(price, *level) for price, level in sorted(sides[False].items())]
        return bids, asks

    def trades(self, symbol: str) -> list[tuple[Decimal, Decimal]]:
        """(shares, price) of the symbol's executions, newest first."""
        return [
            (shares, price) for traded, shares, price in reversed(self.tape) if traded == symbol
        ]

    # -- helpers ----------------------------------------------------------------

    def _own_order(self, account: str, order_id: int) -> Order:
        """Another account's order is answered exactly like a missing one."""
        for order in self.orders:
            if order.order_id == order_id and order.account == account:
                return order
        raise Refused(Reason.NO_SUCH_ORDER)

    def _add_position(self, account: str, symbol: str, shares: Decimal) -> None:
        self.positions[(account, symbol)] = self.position(account, symbol) + shares
