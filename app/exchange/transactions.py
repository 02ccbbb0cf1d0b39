"""The transaction module: the only code that reads or writes the exchange's tables.

Every public method of `Exchange` is one database transaction: it commits
whole or not at all, so no observer ever sees half of a money or share flow.

Locking order, the same in every transaction, which makes deadlocks
impossible by construction:

1. at most one symbol row, `FOR NO KEY UPDATE`. Every write to a symbol's
   orders, positions and executions happens under this lock, so matching on
   one symbol is serialized (the book cannot change while an order walks it,
   and order ids are drawn in arrival order) while different symbols proceed
   in parallel;
2. then account rows, `FOR NO KEY UPDATE`, all in one statement, in ascending
   id order.

No transaction takes a symbol after an account, or a lower account id after a
higher one, so no cycle of waits can form. Deadlock and serialization
failures are still retried a bounded number of times as a safety net, as are
connections found broken before COMMIT; each retry is counted and logged.

`NO KEY UPDATE` rather than `UPDATE`: the foreign-key checks of inserted
rows take `KEY SHARE` locks, which it does not block.
"""

import functools
import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from decimal import (
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
    Rounded,
    localcontext,
)

import tenacity
from sqlalchemy import (
    ARRAY,
    Connection,
    Engine,
    Text,
    any_,
    bindparam,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as upsert
from sqlalchemy.exc import DBAPIError

from app.exchange.commands import (
    CancelOrder,
    CreateAccount,
    CreateSymbol,
    MintShares,
    PlaceOrder,
    QueryOrder,
)
from app.exchange.errors import Reason, Rejected
from app.exchange.results import Cancellation, Fill, Opened, OrderView
from app.storage.schema import (
    accounts,
    executions,
    mints,
    missing_tables,
    orders,
    positions,
    symbols,
)

log = logging.getLogger(__name__)

# Exact decimal arithmetic: any result that would need rounding raises instead.
EXACT = Context(prec=200, traps=[Inexact, Rounded, InvalidOperation, Overflow, DivisionByZero])

DEADLOCK_DETECTED = "40P01"
SERIALIZATION_FAILURE = "40001"
RETRYABLE = {DEADLOCK_DETECTED, SERIALIZATION_FAILURE}

BOOK_BATCH = 16  # resting orders fetched per round trip while an order walks the book
KNOWN_ACCOUNTS_LIMIT = 100_000  # account ids remembered per process (see `account_exists`)

# -- statements, built once per process ---------------------------------------
# Parameters are bound per call; SQLAlchemy compiles each statement once.

_LOCK_SYMBOL = (
    select(symbols.c.symbol)
    .where(symbols.c.symbol == bindparam("symbol"))
    .with_for_update(key_share=True)
)
_LOCK_ACCOUNTS = (
    select(accounts.c.id, accounts.c.balance)
    .where(accounts.c.id == any_(bindparam("account_ids", type_=ARRAY(Text))))
    .order_by(accounts.c.id)
    .with_for_update(key_share=True)
)
_ACCOUNT_EXISTS = select(accounts.c.id).where(accounts.c.id == bindparam("account_id"))
# Named apart from the columns: an UPDATE treats parameters named like columns as SET values.
_HELD = (positions.c.account_id == bindparam("holder")) & (
    positions.c.symbol == bindparam("held_symbol")
)
_RESERVE_SHARES = (
    update(positions)
    .where(_HELD, positions.c.shares >= bindparam("wanted"))
    .values(shares=positions.c.shares - bindparam("wanted"))
    .returning(positions.c.shares)
)
_SHARES_HELD = select(positions.c.shares).where(_HELD)
_INSERT_ORDER = insert(orders).returning(orders.c.id)
_FILL_RESTING = (
    update(orders)
    .where(orders.c.id == bindparam("resting_id"))
    .values(
        open_shares=orders.c.open_shares - bindparam("taken"),
        executed_shares=orders.c.executed_shares + bindparam("taken"),
    )
)
_ADD_CASH = (
    update(accounts)
    .where(accounts.c.id == bindparam("account"))
    .values(balance=accounts.c.balance + bindparam("delta"))
)
_new_position = upsert(positions)
_ADD_SHARES = _new_position.on_conflict_do_update(
    index_elements=[positions.c.account_id, positions.c.symbol],
    set_={"shares": positions.c.shares + _new_position.excluded.shares},
)
_ORDER_OWNER_SYMBOL = select(orders.c.symbol).where(
    orders.c.id == bindparam("order_id"), orders.c.account_id == bindparam("account_id")
)
_ORDER_OPEN_PART = select(orders.c.side, orders.c.limit_price, orders.c.open_shares).where(
    orders.c.id == bindparam("order_id")
)
_CANCEL_REST = (
    update(orders)
    .where(orders.c.id == bindparam("order_id"))
    .values(
        open_shares=0,
        canceled_shares=orders.c.open_shares,
        canceled_at=func.clock_timestamp(),
    )
)
_ORDER_VIEW = (
    select(
        orders.c.open_shares,
        orders.c.canceled_shares,
        orders.c.canceled_at,
        executions.c.shares,
        executions.c.price,
        executions.c.executed_at,
    )
    .select_from(
        orders.outerjoin(
            executions,
            or_(
                executions.c.buy_order_id == orders.c.id,
                executions.c.sell_order_id == orders.c.id,
            ),
        )
    )
    .where(orders.c.id == bindparam("order_id"), orders.c.account_id == bindparam("account_id"))
    .order_by(executions.c.id)
)


def _book_pages(is_buy: bool):
    """The first page of the book an incoming order walks, and the page after a given row.

    A buy takes sells, cheapest first; a sell takes buys, dearest first; equal
    prices go oldest (lowest id) first. Later pages resume after the last row
    seen (keyset paging), so each page is one scan of the book index.
    """
    price = orders.c.limit_price
    book = select(orders.c.id, orders.c.account_id, price, orders.c.open_shares).where(
        orders.c.symbol == bindparam("symbol"),
        orders.c.side == ("sell" if is_buy else "buy"),
        orders.c.open_shares > 0,
    )
    if is_buy:
        book = book.where(price <= bindparam("limit")).order_by(price, orders.c.id)
        better = price > bindparam("last_price")
    else:
        book = book.where(price >= bindparam("limit")).order_by(price.desc(), orders.c.id)
        better = price < bindparam("last_price")
    same_price_later = (price == bindparam("last_price")) & (orders.c.id > bindparam("last_id"))
    page = book.limit(BOOK_BATCH)
    return page, page.where(or_(better, same_price_later))


_BOOK_PAGES = {is_buy: _book_pages(is_buy) for is_buy in (True, False)}


@dataclass(frozen=True, slots=True)
class _Match:
    """A resting order's part in one execution."""

    order_id: int
    account_id: str
    price: Decimal
    shares: Decimal


class _LostBeforeCommit(Exception):
    """The connection broke before COMMIT was sent, so nothing was applied: safe to run again.

    Pooled connections are not pinged before use (that costs a round trip per
    transaction); a connection the server dropped, after a restart say, fails
    its first statement instead, and the transaction runs again on a new one.
    A connection lost during COMMIT is not retried: the commit may have landed.
    """

    def __init__(self, error: DBAPIError):
        super().__init__(str(error))
        self.error = error


def _is_retryable(error: BaseException) -> bool:
    if isinstance(error, _LostBeforeCommit):
        return True
    return isinstance(error, DBAPIError) and getattr(error.orig, "pgcode", None) in RETRYABLE


def _reason(error: BaseException) -> str:
    if isinstance(error, _LostBeforeCommit):
        return "a lost connection"
    return getattr(getattr(error, "orig", None), "pgcode", None) or type(error).__name__


def _transaction(method):
    """Run `method(self, connection, ...)` in one transaction, retried on deadlock."""

    @functools.wraps(method)
    def run(self, *args):
        started = time.perf_counter()

        @functools.wraps(method)
        def attempt():
            with self._engine.begin() as connection, localcontext(EXACT):
                try:
                    return method(self, connection, *args)
                except DBAPIError as error:
                    if error.connection_invalidated:
                        raise _LostBeforeCommit(error) from error
                    raise

        try:
            return self._retrying.copy()(attempt)
        except _LostBeforeCommit as lost:
            raise lost.error from None
        finally:
            self._note_duration(method.__name__, time.perf_counter() - started)

    return run


class Exchange:
    def __init__(self, engine: Engine, max_attempts: int = 5, slow_seconds: float = 1.0):
        self._engine = engine
        self._slow_seconds = slow_seconds
        self.retries = 0
        self._known_accounts: set[str] = set()
        self._retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(_is_retryable),
            stop=tenacity.stop_after_attempt(max_attempts),
            wait=tenacity.wait_random_exponential(multiplier=0.002, max=0.05),
            before_sleep=self._count_retry,
            reraise=True,
        )

    def _count_retry(self, state: tenacity.RetryCallState) -> None:
        self.retries += 1
        error = state.outcome.exception()
        log.warning(
            "retrying %s after %s (attempt %d, %d retries in this process)",
            state.fn.__name__ if state.fn else "transaction",
            _reason(error),
            state.attempt_number,
            self.retries,
        )

    def _note_duration(self, name: str, seconds: float) -> None:
        """A transaction this slow holds its locks as long: worth a warning of its own."""
        if seconds >= self._slow_seconds:
            log.warning("slow transaction: %s took %.1f ms", name, seconds * 1000)

    @_transaction
    def missing_tables(self, connection: Connection) -> list[str]:
        """Tables of the schema the database lacks; readiness asks, with the same retries."""
        return missing_tables(connection)

    # -- accounts and symbols -------------------------------------------------

    def account_exists(self, account_id: str) -> bool:
        """Whether the account exists; remembered once seen, since accounts are never deleted.

        Every `<transactions>` request asks this first, so remembering saves a
        transaction per request. The transactions that move money lock the
        account row anyway and reject an account that is not there.
        """
        if account_id in self._known_accounts:
            return True
        if not self._find_account(account_id):
            return False
        self._remember(account_id)
        return True

    def _remember(self, account_id: str) -> None:
        if len(self._known_accounts) >= KNOWN_ACCOUNTS_LIMIT:
            self._known_accounts.clear()
        self._known_accounts.add(account_id)

    @_transaction
    def _find_account(self, connection: Connection, account_id: str) -> bool:
        return connection.execute(_ACCOUNT_EXISTS, {"account_id": account_id}).first() is not None

    @_transaction
    def create_account(self, connection: Connection, command: CreateAccount) -> None:
        created = connection.execute(
            upsert(accounts)
            .values(id=command.account_id, balance=command.balance, deposited=command.balance)
            .on_conflict_do_nothing()
            .returning(accounts.c.id)
        ).first()
        if created is None:
            raise Rejected(Reason.ACCOUNT_EXISTS)

    @_transaction
    def create_symbol(self, connection: Connection, command: CreateSymbol) -> None:
        connection.execute(upsert(symbols).values(symbol=command.symbol).on_conflict_do_nothing())

    @_transaction
    def mint_shares(self, connection: Connection, command: MintShares) -> None:
        _lock_symbol(connection, command.symbol)
        if not _lock_accounts(connection, {command.account_id}):
            raise Rejected(Reason.NO_SUCH_ACCOUNT)
        _add_shares(connection, command.symbol, {command.account_id: command.shares})
        connection.execute(
            insert(mints).values(
                account_id=command.account_id, symbol=command.symbol, shares=command.shares
            )
        )

    # -- orders ---------------------------------------------------------------

    @_transaction
    def place_order(self, connection: Connection, command: PlaceOrder) -> Opened:
        """Reserve, match against the book by price-time priority, rest the remainder."""
        is_buy = command.amount > 0
        shares, limit = abs(command.amount), command.limit
        _lock_symbol(connection, command.symbol)
        matches = _walk_book(connection, command.symbol, is_buy, shares, limit)
        balances = _lock_accounts(
            connection, {command.account_id, *(match.account_id for match in matches)}
        )
        if command.account_id not in balances:
            raise Rejected(Reason.NO_SUCH_ACCOUNT)

        cash: dict[str, Decimal] = defaultdict(Decimal)
        stock: dict[str, Decimal] = defaultdict(Decimal)
        if is_buy:
            _require(balances[command.account_id], shares * limit, Reason.INSUFFICIENT_FUNDS)
            cash[command.account_id] -= shares * limit
        else:
            _reserve_shares(connection, command.account_id, command.symbol, shares)
        for match in matches:
            buyer, seller = (
                (command.account_id, match.account_id)
                if is_buy
                else (match.account_id, command.account_id)
            )
            buyer_limit = limit if is_buy else match.price
            stock[buyer] += match.shares
            cash[buyer] += match.shares * (buyer_limit - match.price)
            cash[seller] += match.shares * match.price

        executed = sum((match.shares for match in matches), Decimal(0))
        order_id = connection.execute(
            _INSERT_ORDER,
            {
                "account_id": command.account_id,
                "symbol": command.symbol,
                "side": "buy" if is_buy else "sell",
                "shares": shares,
                "limit_price": limit,
                "open_shares": shares - executed,
                "executed_shares": executed,
            },
        ).scalar_one()
        _record_executions(connection, command.symbol, order_id, is_buy, matches)
        _add_cash(connection, cash)
        _add_shares(connection, command.symbol, stock)
        return Opened(order_id, len(matches), executed)

    @_transaction
    def query_order(self, connection: Connection, command: QueryOrder) -> OrderView:
        view = _order_view(connection, command.order_id, command.account_id)
        if view is None:
            raise Rejected(Reason.NO_SUCH_ORDER)
        return view

    @_transaction
    def cancel_order(self, connection: Connection, command: CancelOrder) -> OrderView:
        """Cancel the open remainder and refund its reservation in the same step."""
        order_key = {"order_id": command.order_id, "account_id": command.account_id}
        symbol = connection.execute(_ORDER_OWNER_SYMBOL, order_key).scalar_one_or_none()
        if symbol is None:
            raise Rejected(Reason.NO_SUCH_ORDER)
        _lock_symbol(connection, symbol)
        order = connection.execute(_ORDER_OPEN_PART, {"order_id": command.order_id}).one()
        if order.open_shares == 0:
            raise Rejected(Reason.NOTHING_OPEN)
        _lock_accounts(connection, {command.account_id})
        if order.side == "buy":
            _add_cash(connection, {command.account_id: order.open_shares * order.limit_price})
        else:
            _add_shares(connection, symbol, {command.account_id: order.open_shares})
        connection.execute(_CANCEL_REST, {"order_id": command.order_id})
        return _order_view(connection, command.order_id, command.account_id)


# -- the steps transactions are made of -------------------------------------


def _lock_symbol(connection: Connection, symbol: str) -> None:
    if connection.execute(_LOCK_SYMBOL, {"symbol": symbol}).first() is None:
        raise Rejected(Reason.NO_SUCH_SYMBOL)


def _lock_accounts(connection: Connection, account_ids: set[str]) -> dict[str, Decimal]:
    """Lock the accounts in ascending id order; return the balances of those that exist."""
    rows = connection.execute(_LOCK_ACCOUNTS, {"account_ids": sorted(account_ids)})
    return {row.id: row.balance for row in rows}


def _require(available: Decimal, needed: Decimal, reason: Reason) -> None:
    if available < needed:
        raise Rejected(reason, needed=needed, available=available)


def _reserve_shares(connection: Connection, account_id: str, symbol: str, shares: Decimal) -> None:
    """Take a seller's shares off its position, in one conditional update."""
    held = {"holder": account_id, "held_symbol": symbol}
    if connection.execute(_RESERVE_SHARES, {**held, "wanted": shares}).first() is None:
        available = connection.execute(_SHARES_HELD, held).scalar()
        raise Rejected(Reason.INSUFFICIENT_SHARES, needed=shares, available=available or 0)


def _walk_book(
    connection: Connection, symbol: str, is_buy: bool, shares: Decimal, limit: Decimal
) -> list[_Match]:
    """The resting orders an incoming order takes, best price first, then oldest.

    The symbol lock is held, so the book is stable while it is read page by page.
    """
    first_page, next_page = _BOOK_PAGES[is_buy]
    page, parameters = first_page, {"symbol": symbol, "limit": limit}
    matches: list[_Match] = []
    remaining = shares
    while remaining > 0:
        rows = connection.execute(page, parameters).all()
        for row in rows:
            taken = min(remaining, row.open_shares)
            matches.append(_Match(row.id, row.account_id, row.limit_price, taken))
            remaining -= taken
            if remaining == 0:
                break
        if len(rows) < BOOK_BATCH:
            break
        page = next_page
        parameters = {**parameters, "last_price": rows[-1].limit_price, "last_id": rows[-1].id}
    return matches


def _record_executions(
    connection: Connection, symbol: str, order_id: int, is_buy: bool, matches: list[_Match]
) -> None:
    if not matches:
        return
    connection.execute(
        _FILL_RESTING,
        [{"resting_id": match.order_id, "taken": match.shares} for match in matches],
    )
    connection.execute(
        insert(executions),
        [
            {
                "symbol": symbol,
                "buy_order_id": order_id if is_buy else match.order_id,
                "sell_order_id": match.order_id if is_buy else order_id,
                "shares": match.shares,
                "price": match.price,
            }
            for match in matches
        ],
    )


def _add_cash(connection: Connection, deltas: dict[str, Decimal]) -> None:
    """Apply balance changes to accounts this transaction has already locked."""
    changes = [{"account": account, "delta": delta} for account, delta in deltas.items() if delta]
    if changes:
        connection.execute(_ADD_CASH, changes)


def _add_shares(connection: Connection, symbol: str, grants: dict[str, Decimal]) -> None:
    """Add shares to positions on a symbol whose lock this transaction holds."""
    changes = [
        {"account_id": account, "symbol": symbol, "shares": shares}
        for account, shares in grants.items()
    ]
    if changes:
        connection.execute(_ADD_SHARES, changes)


def _epoch_seconds(moment) -> int:
    return int(moment.timestamp())


def _order_view(connection: Connection, order_id: int, account_id: str) -> OrderView | None:
    """The order and its fills, oldest first, read in one statement (one snapshot)."""
    rows = connection.execute(_ORDER_VIEW, {"order_id": order_id, "account_id": account_id}).all()
    if not rows:
        return None
    first = rows[0]
    canceled = (
        Cancellation(first.canceled_shares, _epoch_seconds(first.canceled_at))
        if first.canceled_at is not None
        else None
    )
    fills = tuple(
        Fill(row.shares, row.price, _epoch_seconds(row.executed_at))
        for row in rows
        if row.shares is not None
    )
    return OrderView(order_id, first.open_shares, canceled, fills)
