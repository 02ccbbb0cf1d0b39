"""The transaction module: the only code that reads or writes the exchange's tables.

Every public method of `Exchange` is one database transaction: it commits
whole or not at all, so no observer ever sees half of a money or share flow.
A method that only reads sends one statement, which is its own snapshot,
and takes no locks.

Locking order, the same in every transaction, which makes deadlocks
impossible by construction:

0. first, at most one idempotency claim (SPEC §9): a request sent with a
   new key claims it with an insert riding ahead of the first statement of
   its first child with an effect (after the nonce of its proof, when
   authentication is on: app/auth/store.py). An insert of the same key by
   a repeat waits for that transaction, and fails once it has committed;
   the waiting transaction holds no lock but its own nonce's (and, with a
   rate limit, its key's bucket, which every request of that key takes
   before anything else);
1. then at most one symbol row, `FOR NO KEY UPDATE`. Every write to a symbol's
   orders, positions and executions happens under this lock, so matching on
   one symbol is serialized (the book cannot change while an order walks it,
   and order ids are drawn in arrival order) while different symbols proceed
   in parallel;
2. then account rows, all in one statement, in ascending id order: `FOR NO
   KEY UPDATE` in id order when an order is placed, or the one account a
   cancel refunds, locked by its UPDATE.
3. last, at most one idempotency record: a child of a request sent with a
   key writes its record in the message of its last statement, before
   COMMIT. The insert waits for a concurrent insert of the same record (a
   repeat running the same child) and fails once it committed; its foreign key
   takes `KEY SHARE` on the claim's row, so a repeat taking the claim over
   waits for the child to end, and the child of an attempt whose claim was
   taken over fails. Either way the child rolls back: a child takes effect at
   most once. The record completing its request's records (every child has
   an effect) marks the claim answered in the same message: the claim's row,
   this attempt's own, updated. The other statements on claims are single
   statements taking no other lock.

No transaction claims a key after a symbol, takes a symbol after an account, or a
lower account id after a higher one, so no cycle of waits can form: a
transaction waiting to claim a key holds nothing its holder needs, and one
waiting for a record or for a claim's row holds no lock the holder still
needs, since the holder has all of its own by then. An order whose fills
reach past the first page of the book would need more accounts than it
locked: it rolls back and runs again with a longer page rather than lock them
out of order.
Deadlock and serialization failures are still retried a bounded number of
times as a safety net, as are connections found broken before COMMIT; each
retry is counted and logged.

`NO KEY UPDATE` rather than `UPDATE`: the foreign-key checks of inserted
rows take `KEY SHARE` locks, which it does not block.

Round trips, the cost that matters while a symbol's lock is held (BEGIN rides
with the first statement, see app/storage/session.py): an order is 2 when the
first page of the book holds every order it takes (lock the symbol, then, in
the same message, read the page and lock the accounts; write everything,
drawing the order's id, with COMMIT in the same message and the id read back
after it: only an accepted order takes an id), a cancel 2 (lock the
order's symbol, then cancel and refund; COMMIT), a query or a read 1. READ
COMMITTED takes a snapshot per statement, so the book is read by a statement
that starts after the symbol's lock is granted, never by the one that waits
for it: the two travel in one message, but they are two statements. Sent
with an idempotency key, an order or a cancel costs the same: the claim rides
in its first message, its record (and the answer) in its last. A keyed
request that commits no effect (reads, refusals) costs one round trip more,
which claims the key with the reply.
"""

import contextlib
import functools
import logging
import time
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
from typing import NamedTuple

import tenacity
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from app import deadline
from app.exchange import statements as sql
from app.exchange.commands import (
    CancelOrder,
    CreateAccount,
    CreateSymbol,
    ListOrders,
    MintShares,
    PlaceOrder,
    PollMarket,
    QueryOrder,
    ShowAccount,
    ShowBook,
    ShowTrades,
)
from app.exchange.errors import CommitUnconfirmed, Reason, Rejected
from app.exchange.matching import Resting, match, settle
from app.exchange.results import (
    AccountStatement,
    Book,
    Cancellation,
    Fill,
    Holding,
    MarketChanges,
    NumberedTrade,
    Opened,
    OpenOrder,
    OpenOrders,
    OrderView,
    PriceLevel,
    Quote,
    Quotes,
    SymbolChanges,
    Trade,
    Trades,
)
from app.idempotency.claims import Child, Claim, ClaimLost, KeyTaken
from app.storage.schema import idempotent_requests, missing_tables
from app.storage.session import Ahead, Statement, Transaction, execute_alone, send_ahead
from app.storage.waits import DeadlinePassed, timed_out

log = logging.getLogger(__name__)

# Exact decimal arithmetic: any result that would need rounding raises instead.
EXACT = Context(prec=200, traps=[Inexact, Rounded, InvalidOperation, Overflow, DivisionByZero])

UNIQUE_VIOLATION = "23505"
DEADLOCK_DETECTED = "40P01"
SERIALIZATION_FAILURE = "40001"
RETRYABLE = {DEADLOCK_DETECTED, SERIALIZATION_FAILURE}

# Violations that mean another attempt has run the child, or taken the claim over.
LOST_CLAIM = {"idempotent_children_pkey", "child_of_the_claiming_attempt"}

LONGER_PAGE = 8  # how much longer the book page gets each time an order outruns it
KNOWN_LIMIT = 100_000  # account ids, and symbols, remembered per process (see `_exists`)


class ClaimFound(NamedTuple):
    """A key's claim, as a repeat finds it: for the same document or not; `answered`, with
    its `reply`, or with none when its reply is its children's records."""

    same_document: bool
    answered: bool
    reply: bytes | None = None


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


class _PageTooShort(Exception):
    """The order takes every resting order of its page and may take more: run it again."""


def _is_retryable(error: BaseException) -> bool:
    if isinstance(error, _LostBeforeCommit):
        return True
    return isinstance(error, DBAPIError) and getattr(error.orig, "pgcode", None) in RETRYABLE


def _out_of_time(state: tenacity.RetryCallState) -> bool:
    return deadline.passed()


def _reason(error: BaseException) -> str:
    if isinstance(error, _LostBeforeCommit):
        return "a lost connection"
    return getattr(getattr(error, "orig", None), "pgcode", None) or type(error).__name__


@contextlib.contextmanager
def _lost_connection_retried(transaction: Transaction | None = None):
    """Mark a connection lost before COMMIT as safe to run again (see `_LostBeforeCommit`).

    Once the transaction's COMMIT has gone out, a lost connection is not:
    the commit may have landed (`CommitUnconfirmed`). A connection closed
    because the request's deadline passed is not either: there is no time left.
    """
    try:
        yield
    except DBAPIError as error:
        if not error.connection_invalidated:
            raise
        if transaction is not None and transaction.commit_sent:
            raise CommitUnconfirmed(error) from error
        if not timed_out(error):
            raise _LostBeforeCommit(error) from error
        raise


def _transaction(method):
    """Run `method(self, transaction, ...)` as one transaction, retried on deadlock.

    It commits when the method returns and rolls back when it raises; a
    connection whose transaction could not be ended is closed, never pooled.
    """
    name = method.__name__.lstrip("_")

    @functools.wraps(method)
    def run(self, *args):
        def attempt():
            with self._engine.connect() as connection, localcontext(EXACT):
                transaction = Transaction(connection)
                try:
                    with _lost_connection_retried(transaction):
                        outcome = method(self, transaction, *args)
                        transaction.commit()  # unless the method's last statement carried it
                except BaseException:
                    _roll_back_or_discard(transaction, connection)
                    raise
                return outcome

        return self._run(name, attempt)

    return run


def _roll_back_or_discard(transaction: Transaction, connection: Connection) -> None:
    """Roll back (on a connection already found broken, only forget the transaction); a
    connection that cannot even roll back is discarded."""
    try:
        transaction.rollback()
    except DBAPIError:
        connection.invalidate()


class Exchange:
    """The exchange's transactions, on an engine made by `exchange_engine`."""

    def __init__(
        self,
        engine: Engine,
        max_attempts: int = 5,
        slow_seconds: float = 1.0,
        max_open_orders: int = 0,
    ):
        """`max_open_orders` bounds each account's open orders (SPEC §8); 0: no bound."""
        self._engine = engine
        self._slow_seconds = slow_seconds
        self._max_open_orders = max_open_orders
        self.retries = 0
        self._known_accounts: set[str] = set()
        self._known_symbols: set[str] = set()
        self._retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(_is_retryable),
            stop=tenacity.stop_any(tenacity.stop_after_attempt(max_attempts), _out_of_time),
            wait=tenacity.wait_random_exponential(multiplier=0.002, max=0.05),
            before_sleep=self._count_retry,
            reraise=True,
        )

    def _run(self, name: str, attempt):
        """`attempt()` with the retries, the lost-connection unwrapping and the slow warning.

        Nothing starts once the request's deadline has passed. One `Retrying`
        serves every call: it keeps its state per thread.
        """
        if deadline.passed():
            raise OperationalError(name, None, DeadlinePassed(f"no time left to run {name}"))
        started = time.perf_counter()
        attempt.__name__ = name  # for the retry's log line
        failed_for_database = False  # then the web tier logs the outage, once, not this
        try:
            return self._retrying(attempt)
        except _LostBeforeCommit as lost:
            failed_for_database = True
            raise lost.error from None
        except (DBAPIError, CommitUnconfirmed):
            failed_for_database = True
            raise
        finally:
            seconds = time.perf_counter() - started
            if seconds >= self._slow_seconds and not failed_for_database:
                # its locks were held as long: worth a warning
                log.warning("slow transaction: %s took %.1f ms", name, seconds * 1000)

    def _count_retry(self, state: tenacity.RetryCallState) -> None:
        self.retries += 1
        log.warning(
            "retrying %s after %s (attempt %d, %d retries in this process)",
            state.fn.__name__,
            _reason(state.outcome.exception()),
            state.attempt_number,
            self.retries,
        )

    def _on_connection(self, name: str, work):
        """`work(connection)` for reads, which need no transaction: always safe to run again."""

        def attempt():
            with self._engine.connect() as connection, _lost_connection_retried():
                return work(connection)

        return self._run(name, attempt)

    def _read(self, name: str, statement: Statement, **parameters) -> list[tuple]:
        return self._on_connection(
            name, lambda connection: execute_alone(connection, statement, **parameters)
        )

    def missing_tables(self) -> list[str]:
        """Tables of the schema the database lacks; readiness asks, with the same retries."""
        return self._on_connection("missing_tables", missing_tables)

    # -- accounts and symbols -------------------------------------------------

    def account_exists(self, account_id: str) -> bool:
        """Whether the account exists (see `_exists`).

        Every `<transactions>` request asks this first, so remembering saves a
        round trip per request. The transactions that move money lock the
        account row anyway and reject an account that is not there.
        """
        return self._exists(
            self._known_accounts, sql.ACCOUNT_EXISTS, account_id, account_id=account_id
        )

    def symbol_exists(self, symbol: str) -> bool:
        """Whether the symbol exists (see `_exists`); every stream that opens asks it."""
        return self._exists(self._known_symbols, sql.SYMBOL_EXISTS, symbol, symbol=symbol)

    def _exists(self, known: set[str], statement: Statement, key: str, **parameters) -> bool:
        """Whether `statement` finds a row; remembered once found, since neither accounts
        nor symbols are ever deleted."""
        if key in known:
            return True
        if not self._read(statement.name, statement, **parameters):
            return False
        if len(known) >= KNOWN_LIMIT:
            known.clear()
        known.add(key)
        return True

    @_transaction
    def create_account(
        self, transaction: Transaction, command: CreateAccount, child: Child | None = None
    ) -> None:
        created = transaction.execute(
            sql.CREATE_ACCOUNT, account_id=command.account_id, balance=command.balance
        )
        if not created:
            raise Rejected(Reason.ACCOUNT_EXISTS)
        _record(transaction, child)

    @_transaction
    def create_symbol(self, transaction: Transaction, command: CreateSymbol) -> None:
        transaction.execute(sql.CREATE_SYMBOL, symbol=command.symbol)

    @_transaction
    def mint_shares(
        self, transaction: Transaction, command: MintShares, child: Child | None = None
    ) -> None:
        _lock_symbol(transaction, command.symbol)
        minted = transaction.execute(
            sql.MINT,
            symbol=command.symbol,
            account_id=command.account_id,
            shares=command.shares,
        )
        if not minted:
            raise Rejected(Reason.NO_SUCH_ACCOUNT)
        _record(transaction, child)

    # -- orders ---------------------------------------------------------------

    def place_order(self, command: PlaceOrder, child: Child | None = None) -> Opened:
        """Reserve, match against the book by price-time priority, rest the remainder."""
        page_size = sql.BOOK_PAGE
        while True:
            try:
                return self._place_order(command, page_size, child)
            except _PageTooShort:
                page_size *= LONGER_PAGE

    @_transaction
    def _place_order(
        self, transaction: Transaction, command: PlaceOrder, page_size: int, child: Child | None
    ) -> Opened:
        is_buy = command.amount > 0
        wanted = abs(command.amount)
        rows = transaction.execute_after(
            sql.LOCK_SYMBOL,
            sql.BOOK_AND_ACCOUNTS[is_buy],
            symbol=command.symbol,
            limit=command.limit,
            shares=wanted,
            page_size=page_size,
            account_id=command.account_id,
        )
        if not rows:  # no account locked: the acting one does not exist, nor perhaps the symbol
            _lock_symbol(transaction, command.symbol)
            raise Rejected(Reason.NO_SUCH_ACCOUNT)
        if not rows[0].symbol_exists:
            raise Rejected(Reason.NO_SUCH_SYMBOL)
        balances = {row.account_id: row.balance for row in rows}
        if command.account_id not in balances:
            raise Rejected(Reason.NO_SUCH_ACCOUNT)
        if self._max_open_orders:
            self._require_room(transaction, command.account_id)
        if is_buy:
            _require(
                balances[command.account_id], wanted * command.limit, Reason.INSUFFICIENT_FUNDS
            )
        else:
            _require(rows[0].held or Decimal(0), wanted, Reason.INSUFFICIENT_SHARES)

        page = [
            Resting(row.order_id, row.account_id, row.limit_price, row.open_shares)
            for row in rows
            if row.order_id is not None
        ]
        trades = match(wanted, page)
        executed = sum((trade.shares for trade in trades), Decimal(0))
        if executed < wanted and len(page) == page_size:
            raise _PageTooShort
        settlement = settle(command, trades)
        delivered = {account: n for account, n in settlement.shares.items() if n > 0}
        debited = -min(settlement.shares.get(command.account_id, Decimal(0)), Decimal(0))
        with _claim_kept():
            [drawn] = transaction.execute_and_commit(
                sql.RECORD_ORDER[is_buy],
                *_recording(child),
                then=sql.ORDER_ID_DRAWN,
                **(child.parameters(placed=True) if child else {}),
                account_id=command.account_id,
                symbol=command.symbol,
                shares=wanted,
                limit=command.limit,
                open_shares=wanted - executed,
                executed_shares=executed,
                fill_order_id=[trade.order_id for trade in trades],
                fill_shares=[trade.shares for trade in trades],
                fill_price=[trade.price for trade in trades],
                payment_account_id=list(settlement.cash),
                payment_amount=list(settlement.cash.values()),
                delivery_account_id=list(delivered),
                delivery_shares=list(delivered.values()),
                debit=debited,
            )
        return Opened(drawn.order_id, len(trades), executed)

    def _require_room(self, transaction: Transaction, account_id: str) -> None:
        """Refuse an order of an account that has as many orders open as it may.

        A round trip more, only when the bound is set: the count needs a snapshot
        taken after the account's lock was granted, which the book's statement,
        waiting for that lock, did not have. Under the lock no order of the
        account can open meanwhile, so the bound holds however many arrive at once.
        """
        most = self._max_open_orders
        [row] = transaction.execute(sql.OPEN_ORDER_COUNT, account_id=account_id, most=most)
        if row.open >= most:
            raise Rejected(Reason.TOO_MANY_OPEN_ORDERS)

    def query_order(self, command: QueryOrder) -> OrderView:
        rows = self._read(
            "query_order", sql.ORDER_VIEW, order_id=command.order_id, account_id=command.account_id
        )
        if not rows:
            raise Rejected(Reason.NO_SUCH_ORDER)
        first = rows[0]
        canceled = _cancellation(first.canceled_shares, first.canceled_at)
        return OrderView(command.order_id, first.open_shares, canceled, _fills(rows))

    @_transaction
    def cancel_order(
        self, transaction: Transaction, command: CancelOrder, child: Child | None = None
    ) -> OrderView:
        """Cancel the open remainder and refund its reservation in the same step."""
        order = {"order_id": command.order_id, "account_id": command.account_id}
        rows = transaction.execute_after(sql.LOCK_SYMBOL_OF_ORDER, sql.CANCEL, **order)
        if not rows:
            raise Rejected(Reason.NO_SUCH_ORDER)
        first = rows[0]
        if first.canceled_shares is None:
            raise Rejected(Reason.NOTHING_OPEN)
        canceled = _cancellation(first.canceled_shares, first.canceled_at)
        _record(transaction, child, command.order_id)
        return OrderView(command.order_id, Decimal(0), canceled, _fills(rows))

    # -- reading the market and one's account (SPEC §7) -----------------------
    # Each is one statement, so one snapshot, and takes no locks: not the
    # symbol's, not the accounts'. A read never waits for matching, and
    # matching never waits for a read.

    def account_statement(self, command: ShowAccount) -> AccountStatement:
        """Cash and holdings, each with what the open orders hold; takes no locks."""
        rows = self._read("account_statement", sql.ACCOUNT_STATEMENT, account_id=command.account_id)
        if not rows:
            raise Rejected(Reason.NO_SUCH_ACCOUNT)
        holdings = tuple(
            Holding(row.symbol, row.shares, row.reserved_shares)
            for row in rows
            if row.symbol is not None
        )
        return AccountStatement(command.account_id, rows[0].balance, rows[0].reserved, holdings)

    def open_orders(self, command: ListOrders) -> OpenOrders:
        """A page of the account's open orders, oldest first; takes no locks.

        One order more than the page is read, to tell whether more remain.
        """
        rows = self._read(
            "open_orders",
            sql.OPEN_ORDERS,
            account_id=command.account_id,
            symbol=command.symbol,
            after=command.after,
            rows=sql.OPEN_ORDERS_PAGE + 1,
        )
        if not rows:
            raise Rejected(Reason.NO_SUCH_ACCOUNT)
        if not rows[0].symbol_known:
            raise Rejected(Reason.NO_SUCH_SYMBOL)
        listed = [
            OpenOrder(
                row.id,
                row.symbol,
                row.shares if row.side == "buy" else -row.shares,
                row.limit_price,
                row.open_shares,
                _epoch_seconds(row.created_at),
            )
            for row in rows
            if row.id is not None
        ]
        more = len(listed) > sql.OPEN_ORDERS_PAGE
        return OpenOrders(tuple(listed[: sql.OPEN_ORDERS_PAGE]), more)

    def book(self, command: ShowBook) -> Book:
        """The symbol's best price levels a side, aggregated in SQL; takes no locks."""
        rows = self._read("book", sql.BOOK, symbol=command.symbol, depth=command.depth)
        if not rows:
            raise Rejected(Reason.NO_SUCH_SYMBOL)
        return Book(command.symbol, _levels(rows, is_bid=True), _levels(rows, is_bid=False))

    def trades(self, command: ShowTrades) -> Trades:
        """The symbol's latest executions, newest first; takes no locks."""
        rows = self._read("trades", sql.TRADES, symbol=command.symbol, limit=command.limit)
        if not rows:
            raise Rejected(Reason.NO_SUCH_SYMBOL)
        return Trades(
            command.symbol,
            tuple(
                Trade(row.shares, row.price, _epoch_seconds(row.executed_at))
                for row in rows
                if row.shares is not None
            ),
        )

    # -- idempotent requests (SPEC §9) ----------------------------------------
    # A new key's claim rides ahead of its request's first effect (`claiming`);
    # the rest are one statement on their own, which commits by itself.

    def claiming(self, claim: Claim, answered: bool) -> Ahead:
        """The claim's insert, to ride ahead of the next message: `answered` by the
        records of its request when it rides with the request's only effect, else leased.
        Raises KeyTaken, instead of running what it rode with, when the key is another
        attempt's."""
        return _claim_insert(claim, sql.FROM_THE_RECORDS if answered else None)

    def claim_answered(self, claim: Claim, reply: bytes) -> None:
        """Claim the key with its reply, for a request that committed nothing (reads,
        refusals): one statement, which commits without waiting for the disk (see
        `Ahead`). Raises KeyTaken when the key is another attempt's."""
        ahead = _claim_insert(claim, reply)
        self._on_connection("claim_answered", lambda connection: send_ahead(connection, ahead))

    def claim_request(
        self, scope: str, key: str, fingerprint: bytes, attempt: int, lease_seconds: float
    ) -> int | None:
        """Claim the key for `attempt`, when new, or left unanswered by an attempt whose
        lease ran out, for the same document (or already this attempt's): how many
        attempts it has had, this one included. None when answered, running, or
        another document's."""
        rows = self._read(
            "claim_request",
            sql.CLAIM_REQUEST,
            scope=scope,
            key=key,
            fingerprint=fingerprint,
            attempt=attempt,
            lease_seconds=lease_seconds,
        )
        return rows[0].attempts if rows else None

    def request_claim(self, scope: str, key: str, fingerprint: bytes) -> ClaimFound:
        """What the key's claim says. A key not found (its claim went the way of a
        transaction rolled back, or was purged) reads as running."""
        rows = self._read(
            "request_claim", sql.REQUEST_CLAIM, scope=scope, key=key, fingerprint=fingerprint
        )
        if not rows:
            return ClaimFound(same_document=True, answered=False)
        reply = rows[0].reply
        if reply is None or bytes(reply) == sql.FROM_THE_RECORDS:
            return ClaimFound(rows[0].same_document, answered=reply is not None)
        return ClaimFound(rows[0].same_document, answered=True, reply=bytes(reply))

    def recorded_children(self, scope: str, key: str) -> dict[int, int | None]:
        """The children earlier attempts committed, with the order each placed or canceled."""
        rows = self._read("recorded_children", sql.RECORDED_CHILDREN, scope=scope, key=key)
        return {row.child: row.order_id for row in rows}

    def record_reply(self, scope: str, key: str, attempt: int, reply: bytes) -> bool:
        """Keep the reply for repeats; False when the claim is no longer this attempt's."""
        rows = self._read(
            "record_reply", sql.RECORD_REPLY, scope=scope, key=key, attempt=attempt, reply=reply
        )
        return bool(rows)

    def renew_lease(self, scope: str, key: str, attempt: int, lease_seconds: float) -> bool:
        rows = self._read(
            "renew_lease",
            sql.RENEW_LEASE,
            scope=scope,
            key=key,
            attempt=attempt,
            lease_seconds=lease_seconds,
        )
        return bool(rows)

    def release_claim(self, scope: str, key: str, attempt: int) -> None:
        """End the lease at once: a repeat may take over without waiting for it."""
        self._read("release_claim", sql.RELEASE_CLAIM, scope=scope, key=key, attempt=attempt)

    def purge_requests(self, keep_seconds: float, batch: int) -> int:
        """Forget up to `batch` requests older than `keep_seconds`; how many were."""
        return len(
            self._read("purge_requests", sql.PURGE_REQUESTS, keep_seconds=keep_seconds, batch=batch)
        )

    # -- live market data (SPEC §10) ---------------------------------------------

    def quotes(self) -> Quotes:
        """Every symbol with its last trade; one statement, no locks."""
        rows = self._read("symbols", sql.SYMBOLS)
        return Quotes(
            tuple(
                Quote(
                    row.symbol,
                    row.price,
                    None if row.executed_at is None else _epoch_seconds(row.executed_at),
                )
                for row in rows
            )
        )

    def poll_market(self, poll: PollMarket) -> MarketChanges:
        """What changed on every watched symbol, in one statement: one snapshot, no locks,
        one round trip however many streams follow the symbols."""
        watched, resumed = poll.watched, poll.resumed
        rows = self._read(
            "poll_market",
            sql.POLL_MARKET,
            watched_symbol=[symbol.symbol for symbol in watched],
            watched_depth=[symbol.depth for symbol in watched],
            watched_after=[symbol.after for symbol in watched],
            page=sql.MARKET_PAGE,
            resumed_symbol=[symbol for symbol, _ in resumed],
            resumed_after=[after for _, after in resumed],
        )
        parts: dict[tuple[str, str, int | None], list[tuple]] = {}
        for row in rows:  # `after` is null but in the resumed part
            parts.setdefault((row.part, row.symbol, row.after), []).append(row)
        symbols = {}
        for part, symbol, _ in list(parts):
            if part == "head":
                levels = parts.get(("level", symbol, None), [])
                symbols[symbol] = SymbolChanges(
                    Book(symbol, _levels(levels, is_bid=True), _levels(levels, is_bid=False)),
                    parts[part, symbol, None][0].id or 0,
                    _numbered(parts.get(("trade", symbol, None), [])),
                )
        missed = {pair: _numbered(parts.get(("resumed", *pair), [])) for pair in resumed}
        return MarketChanges(symbols, missed)


# -- the steps transactions are made of -------------------------------------


def _record(transaction: Transaction, child: Child | None, order_id: int | None = None) -> None:
    """Record the child's effect and commit, in one message; nothing for a request
    without a key (the transaction commits as usual)."""
    if child is not None:
        with _claim_kept():
            transaction.execute_and_commit(*_recording(child), **child.parameters(order_id))


def _recording(child: Child | None) -> tuple[Statement, ...]:
    """What records the child's effect: its record, and the request's answer when the
    record completes the request's records."""
    if child is None:
        return ()
    return (sql.RECORD_CHILD, sql.ANSWERED_BY_THE_RECORDS) if child.answers else (sql.RECORD_CHILD,)


def _claim_insert(claim: Claim, reply: bytes | None) -> Ahead:
    """The claim's insert, answered by `reply` when given (leased otherwise)."""
    parameters = {
        "claimed_scope": claim.scope,
        "claimed_key": claim.key,
        "claimed_fingerprint": claim.fingerprint,
        "claimed_attempt": claim.attempt,
        "claimed_lease_seconds": claim.lease_seconds if reply is None else None,
        "claimed_reply": reply,
    }
    return Ahead((sql.CLAIM_KEY,), parameters, _key_taken)


def _key_taken(error: DBAPIError) -> Exception | None:
    """A claim's insert refused: the key is another attempt's."""
    code, diagnosis = getattr(error.orig, "pgcode", None), getattr(error.orig, "diag", None)
    table = getattr(diagnosis, "table_name", None)
    if (code, table) == (UNIQUE_VIOLATION, idempotent_requests.name):
        return KeyTaken()
    return None


@contextlib.contextmanager
def _claim_kept():
    """A child record refused: another attempt has run the child or taken the claim."""
    try:
        yield
    except DBAPIError as error:
        constraint = getattr(getattr(error.orig, "diag", None), "constraint_name", None)
        if constraint in LOST_CLAIM:
            raise ClaimLost() from error
        raise


def _lock_symbol(transaction: Transaction, symbol: str) -> None:
    if not transaction.execute(sql.LOCK_SYMBOL, symbol=symbol):
        raise Rejected(Reason.NO_SUCH_SYMBOL)


def _require(available: Decimal, needed: Decimal, reason: Reason) -> None:
    if available < needed:
        raise Rejected(reason, needed=needed, available=available)


def _epoch_seconds(moment) -> int:
    return int(moment.timestamp())


def _cancellation(shares: Decimal, moment) -> Cancellation | None:
    return Cancellation(shares, _epoch_seconds(moment)) if moment is not None else None


def _levels(rows: list[tuple], is_bid: bool) -> tuple[PriceLevel, ...]:
    """One side's price levels from the book's rows (an empty book: one null row)."""
    return tuple(
        PriceLevel(row.price, row.shares, row.orders)
        for row in rows
        if row.price is not None and row.is_bid == is_bid
    )


def _fills(rows: list[tuple]) -> tuple[Fill, ...]:
    """An order's executions, oldest first, from rows of an outer join (none: one null row)."""
    return tuple(
        Fill(row.shares, row.price, _epoch_seconds(row.executed_at))
        for row in rows
        if row.shares is not None
    )


def _numbered(rows: list[tuple]) -> tuple[NumberedTrade, ...]:
    return tuple(
        NumberedTrade(row.id, Trade(row.shares, row.price, _epoch_seconds(row.executed_at)))
        for row in rows
    )
