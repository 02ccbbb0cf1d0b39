"""Every SQL statement the exchange sends, built once with SQLAlchemy Core.

Only the transaction module executes these; the locking order they serve is
documented there. Each per-call value is a named parameter; lists travel as
PostgreSQL arrays and are unnested, so one statement writes any number of rows.
"""

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    DateTime,
    Integer,
    LargeBinary,
    Select,
    Text,
    any_,
    bindparam,
    case,
    cast,
    exists,
    func,
    insert,
    literal,
    literal_column,
    null,
    or_,
    select,
    true,
    tuple_,
    union,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import insert as upsert

from app.storage.schema import (
    NUMBER,
    accounts,
    executions,
    idempotent_children,
    idempotent_requests,
    mints,
    order_ids,
    orders,
    positions,
    symbols,
)
from app.storage.session import Statement

BOOK_PAGE = 16  # resting orders an incoming order reads at first (see place_order)


def _rows(alias: str, ordinality: str | None = None, **columns):
    """Parallel array parameters as the rows of a table, one parameter per column:
    `unnest(:fill_order_id, :fill_shares) AS fill(order_id, shares)`."""
    arrays = (bindparam(f"{alias}_{name}", type_=ARRAY(kind)) for name, kind in columns.items())
    return (
        func.unnest(*arrays)
        .table_valued(*columns, with_ordinality=ordinality)
        .render_derived(name=alias)
    )


def _side(is_buy: bool) -> str:
    return "buy" if is_buy else "sell"


def _add_shares(rows):
    """Add `rows` (account_id, shares) to positions on :symbol, creating missing positions."""
    new = upsert(positions).from_select(
        ["account_id", "symbol", "shares"],
        select(rows.c.account_id, bindparam("symbol", type_=Text), rows.c.shares),
    )
    return new.on_conflict_do_update(
        index_elements=[positions.c.account_id, positions.c.symbol],
        set_={"shares": positions.c.shares + new.excluded.shares},
    )


# -- accounts and symbols ---------------------------------------------------------

ACCOUNT_EXISTS = Statement(
    "account_exists", select(accounts.c.id).where(accounts.c.id == bindparam("account_id"))
)

CREATE_ACCOUNT = Statement(
    "create_account",
    upsert(accounts)
    .values(
        id=bindparam("account_id"), balance=bindparam("balance"), deposited=bindparam("balance")
    )
    .on_conflict_do_nothing()
    .returning(accounts.c.id),
)

CREATE_SYMBOL = Statement(
    "create_symbol", upsert(symbols).values(symbol=bindparam("symbol")).on_conflict_do_nothing()
)

LOCK_SYMBOL = Statement(
    "lock_symbol",
    select(symbols.c.symbol)
    .where(symbols.c.symbol == bindparam("symbol"))
    .with_for_update(key_share=True),
    waits_for_a_lock=True,
)

# A mint is recorded, and its shares added, only for an account that exists.
_minted = (
    insert(mints)
    .from_select(
        ["account_id", "symbol", "shares"],
        select(
            accounts.c.id, bindparam("symbol", type_=Text), bindparam("shares", type_=NUMBER)
        ).where(accounts.c.id == bindparam("account_id")),
    )
    .returning(mints.c.account_id, mints.c.shares)
    .cte("minted")
)
MINT = Statement("mint", _add_shares(_minted).returning(positions.c.account_id))


# -- placing an order -------------------------------------------------------------


def _book_and_accounts(is_buy: bool) -> Statement:
    """The resting orders an incoming order takes from the first page of the book, and
    the accounts involved locked in ascending id order, with their balances.

    One row per locked account, joined to its resting orders in the page (none
    for the incoming order's own account unless it rests there too), best first.
    A buy takes sells, cheapest first; a sell takes buys, dearest first; equal
    prices go oldest (lowest id) first. Of the page's `:page_size` best orders
    only those still needed are kept: the orders ahead of them hold fewer than
    `:shares`, so no account is locked that the order does not trade with.
    `held` is the incoming account's position on the symbol, for a seller's check;
    `symbol_exists` whether the symbol does (its lock is taken by LOCK_SYMBOL,
    sent in the same message just before, whose rows the driver drops).
    """
    price = orders.c.limit_price
    best_first = (price, orders.c.id) if is_buy else (price.desc(), orders.c.id)
    ranked = (
        select(
            orders.c.id,
            orders.c.account_id,
            price,
            orders.c.open_shares,
            (func.sum(orders.c.open_shares).over(order_by=best_first) - orders.c.open_shares).label(
                "ahead"
            ),
        )
        .where(
            orders.c.symbol == bindparam("symbol"),
            orders.c.side == ("sell" if is_buy else "buy"),
            orders.c.open_shares > 0,
            price <= bindparam("limit") if is_buy else price >= bindparam("limit"),
        )
        .order_by(*best_first)
        .limit(bindparam("page_size", type_=Integer))
        .subquery("ranked")
    )
    page = (
        select(ranked.c.id, ranked.c.account_id, ranked.c.limit_price, ranked.c.open_shares)
        .where(ranked.c.ahead < bindparam("shares"))
        .cte("page")
    )
    involved = union(select(page.c.account_id), select(bindparam("account_id", type_=Text)))
    locked = (
        select(accounts.c.id, accounts.c.balance)
        .where(accounts.c.id.in_(involved))
        .order_by(accounts.c.id)
        .with_for_update(key_share=True)
        .subquery("locked")
    )
    held = (
        select(positions.c.shares)
        .where(
            positions.c.account_id == bindparam("account_id"),
            positions.c.symbol == bindparam("symbol"),
        )
        .scalar_subquery()
    )
    page_best_first = (
        (page.c.limit_price, page.c.id)
        if is_buy
        else (page.c.limit_price.desc().nulls_last(), page.c.id)
    )
    return Statement(
        f"book_and_accounts_{_side(is_buy)}",
        select(
            locked.c.id.label("account_id"),
            locked.c.balance,
            page.c.id.label("order_id"),
            page.c.limit_price,
            page.c.open_shares,
            held.label("held"),
            exists().where(symbols.c.symbol == bindparam("symbol")).label("symbol_exists"),
        )
        .select_from(locked.outerjoin(page, page.c.account_id == locked.c.id))
        .order_by(*page_best_first),
    )


def _record_order(is_buy: bool) -> Statement:
    """Every write of an order placed, in one statement that returns nothing.

    The order row, its id drawn here, under the symbol's lock, so that ids grow
    in arrival order and only accepted orders take one (ORDER_ID_DRAWN reads it
    back); the fills of the resting orders it took; one execution per fill, in
    fill order; every account's cash change (the buyer's reservation and
    refunds, the sellers' proceeds); the shares delivered to buyers; the
    `:debit` of the incoming account's own position (a seller's reservation,
    net of what it bought from itself).
    """
    drawn = select(order_ids.next_value().label("id")).cte("drawn")  # once: nextval is volatile
    order_id = select(drawn.c.id).scalar_subquery()
    placed = insert(orders).values(
        id=order_id,
        account_id=bindparam("account_id"),
        symbol=bindparam("symbol"),
        side=_side(is_buy),
        shares=bindparam("shares"),
        limit_price=bindparam("limit"),
        open_shares=bindparam("open_shares"),
        executed_shares=bindparam("executed_shares"),
    )
    fill = _rows("fill", "n", order_id=BigInteger, shares=NUMBER, price=NUMBER)
    filled = (
        update(orders)
        .where(orders.c.id == fill.c.order_id)
        .values(
            open_shares=orders.c.open_shares - fill.c.shares,
            executed_shares=orders.c.executed_shares + fill.c.shares,
        )
        .cte("filled")
    )
    buy, sell = (order_id, fill.c.order_id) if is_buy else (fill.c.order_id, order_id)
    executed = (
        insert(executions)
        .from_select(
            ["symbol", "buy_order_id", "sell_order_id", "shares", "price"],
            select(bindparam("symbol", type_=Text), buy, sell, fill.c.shares, fill.c.price)
            .select_from(fill)
            .order_by(fill.c.n),
        )
        .cte("executed")
    )
    # `= ANY` rather than a join: a generic plan would expect a hundred payments
    # and hash-join a seq scan of accounts rather than look each one up.
    payment = _rows("payment", account_id=Text, amount=NUMBER)
    paid = (
        update(accounts)
        .where(accounts.c.id == any_(bindparam("payment_account_id", type_=ARRAY(Text))))
        .values(
            balance=accounts.c.balance
            + select(payment.c.amount)
            .where(payment.c.account_id == accounts.c.id)
            .scalar_subquery()
        )
        .cte("paid")
    )
    delivery = _rows("delivery", account_id=Text, shares=NUMBER)
    delivered = _add_shares(delivery).cte("delivered")
    # Apart from the deliveries: PostgreSQL checks an upsert's proposed row before
    # it finds the conflict, so a negative one would break `position_not_negative`.
    debit = bindparam("debit", type_=NUMBER)
    debited = (
        update(positions)
        .where(
            positions.c.account_id == bindparam("account_id"),
            positions.c.symbol == bindparam("symbol"),
            debit > 0,
        )
        .values(shares=positions.c.shares - debit)
        .cte("debited")
    )
    return Statement(
        f"record_order_{_side(is_buy)}", placed.add_cte(filled, executed, paid, delivered, debited)
    )


# How many orders the account has open, counting no further than `:most`: run after
# the account's row is locked, so no order of it can open meanwhile.
_open_of_account = (
    select(orders.c.id)
    .where(orders.c.account_id == bindparam("account_id"), orders.c.open_shares > 0)
    .limit(bindparam("most", type_=Integer))
    .subquery("open")
)
OPEN_ORDER_COUNT = Statement(
    "open_order_count", select(func.count().label("open")).select_from(_open_of_account)
)

BOOK_AND_ACCOUNTS = {is_buy: _book_and_accounts(is_buy) for is_buy in (True, False)}

# The id RECORD_ORDER drew, read back after COMMIT in the same message (the
# session's last value of the sequence: no other statement of it draws one).
_last_order_id = func.currval(literal_column(f"'{order_ids.name}'"))
ORDER_ID_DRAWN = Statement("order_id_drawn", select(_last_order_id.label("order_id")))
RECORD_ORDER = {is_buy: _record_order(is_buy) for is_buy in (True, False)}


# -- querying and canceling an order ---------------------------------------------

ORDER_VIEW = Statement(
    "order_view",
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
                executions.c.buy_order_id == orders.c.id, executions.c.sell_order_id == orders.c.id
            ),
        )
    )
    .where(orders.c.id == bindparam("order_id"), orders.c.account_id == bindparam("account_id"))
    .order_by(executions.c.id),
)

# The order's symbol never changes, so finding it needs no lock; the symbol is
# locked in the same statement.
LOCK_SYMBOL_OF_ORDER = Statement(
    "lock_symbol_of_order",
    select(symbols.c.symbol)
    .where(
        symbols.c.symbol
        == select(orders.c.symbol)
        .where(orders.c.id == bindparam("order_id"), orders.c.account_id == bindparam("account_id"))
        .scalar_subquery()
    )
    .with_for_update(key_share=True),
    waits_for_a_lock=True,
)


def _cancel() -> Statement:
    """Cancel the open remainder, refund its reservation, and return the order's new status.

    No row when the order is not `:account_id`'s (or does not exist): the
    statement checks the owner itself, since LOCK_SYMBOL_OF_ORDER, sent in the
    same message, cannot stop it. A NULL `canceled_shares` when nothing was
    open. A data-modifying CTE's effects are invisible to the rest of its
    statement, so the canceled part comes from RETURNING. The refund goes to
    `:account_id`, the order's owner.
    """
    canceled = (
        update(orders)
        .where(
            orders.c.id == bindparam("order_id"),
            orders.c.account_id == bindparam("account_id"),
            orders.c.open_shares > 0,
        )
        .values(
            open_shares=0, canceled_shares=orders.c.open_shares, canceled_at=func.clock_timestamp()
        )
        .returning(
            orders.c.id,
            orders.c.symbol,
            orders.c.side,
            orders.c.limit_price,
            orders.c.canceled_shares,
            orders.c.canceled_at,
        )
        .cte("canceled")
    )
    cash_refunded = (
        update(accounts)
        .where(accounts.c.id == bindparam("account_id"), canceled.c.side == "buy")
        .values(balance=accounts.c.balance + canceled.c.canceled_shares * canceled.c.limit_price)
        .cte("cash_refunded")
    )
    shares_refunded = (
        update(positions)
        .where(
            positions.c.account_id == bindparam("account_id"),
            positions.c.symbol == canceled.c.symbol,
            canceled.c.side == "sell",
        )
        .values(shares=positions.c.shares + canceled.c.canceled_shares)
        .cte("shares_refunded")
    )
    owned = (
        select(orders.c.id)
        .where(orders.c.id == bindparam("order_id"), orders.c.account_id == bindparam("account_id"))
        .subquery("owned")
    )
    fills = or_(executions.c.buy_order_id == owned.c.id, executions.c.sell_order_id == owned.c.id)
    return Statement(
        "cancel",
        select(
            canceled.c.canceled_shares,
            canceled.c.canceled_at,
            executions.c.shares,
            executions.c.price,
            executions.c.executed_at,
        )
        .select_from(owned.outerjoin(canceled, true()).outerjoin(executions, fills))
        .order_by(executions.c.id)
        .add_cte(cash_refunded, shares_refunded),
    )


CANCEL = _cancel()


# -- reading: one statement each, so one snapshot, and no locks ---------------------
# A lone statement under READ COMMITTED sees one snapshot of every table it reads:
# never half of a transaction's writes. SELECT without FOR UPDATE takes no row
# locks, so a read never waits for matching and never makes it wait.

OPEN_ORDERS_PAGE = 1000  # open orders per reply (SPEC §7)


def _one_of(column, value):
    """`column = value` written as a range of one, for reads that walk an index in order.

    An equality makes the value a constant to the planner, which then drops
    the column from ORDER BY and may walk the primary key instead, through
    every row of the table, to find a quiet account's or symbol's few (a
    generic plan cannot tell them from busy ones). Ordered by the column and
    the id, only the index on both yields the order.
    """
    return column.between(value, value)


def statements_with_holdings() -> Select:
    """Every account's statement, one row per holding (one row with no symbol when none).

    `reserved` is the cash of the account's open buys (open shares × limit);
    a holding is a position with shares or with shares held by open sells,
    `reserved_shares`. Every sell debited a position row first, so open sells
    never hold shares of a symbol with no position row. The audit runs this
    for all accounts, the service for one (ACCOUNT_STATEMENT).
    """
    cash = (
        select(
            func.coalesce(func.sum(orders.c.open_shares * orders.c.limit_price), 0).label(
                "reserved"
            )
        )
        .where(
            orders.c.account_id == accounts.c.id, orders.c.side == "buy", orders.c.open_shares > 0
        )
        .lateral("cash")
    )
    offered = func.coalesce(func.sum(orders.c.open_shares), 0)
    holdings = (
        select(positions.c.symbol, positions.c.shares, offered.label("reserved_shares"))
        .select_from(
            positions.outerjoin(
                orders,
                (orders.c.account_id == positions.c.account_id)
                & (orders.c.symbol == positions.c.symbol)
                & (orders.c.side == "sell")
                & (orders.c.open_shares > 0),
            )
        )
        .where(positions.c.account_id == accounts.c.id)
        .group_by(positions.c.symbol, positions.c.shares)
        .having(or_(positions.c.shares > 0, offered > 0))
        .lateral("holdings")
    )
    return select(
        accounts.c.id.label("account_id"),
        accounts.c.balance,
        cash.c.reserved,
        holdings.c.symbol,
        holdings.c.shares,
        holdings.c.reserved_shares,
    ).select_from(accounts.join(cash, true()).outerjoin(holdings, true()))


def _account_statement() -> Statement:
    """One account's statement, its holdings in byte order of their symbols."""
    lines = statements_with_holdings().where(accounts.c.id == bindparam("account_id"))
    return Statement(
        "account_statement", lines.order_by(lines.selected_columns.symbol.collate("C"))
    )


ACCOUNT_STATEMENT = _account_statement()


def _open_orders() -> Statement:
    """A page of the account's open orders after `:after`, oldest first, `:rows` at most:
    a range of `open_orders_by_account` (see `_one_of`), starting where the last ended.

    One row with no order when there are none, none when the account does not
    exist; `symbol_known` is false when `:symbol` is given but does not exist.
    """
    symbol = bindparam("symbol", type_=Text)
    page = (
        select(
            orders.c.id,
            orders.c.symbol,
            orders.c.side,
            orders.c.shares,
            orders.c.limit_price,
            orders.c.open_shares,
            orders.c.created_at,
        )
        .where(
            _one_of(orders.c.account_id, accounts.c.id),
            orders.c.id > bindparam("after", type_=BigInteger),
            orders.c.open_shares > 0,
            or_(symbol.is_(None), orders.c.symbol == symbol),
        )
        .order_by(orders.c.account_id, orders.c.id)
        .limit(bindparam("rows", type_=Integer))
        .lateral("page")
    )
    symbol_known = or_(
        symbol.is_(None), select(symbols.c.symbol).where(symbols.c.symbol == symbol).exists()
    )
    return Statement(
        "open_orders",
        select(symbol_known.label("symbol_known"), page)
        .select_from(accounts.outerjoin(page, true()))
        .where(accounts.c.id == bindparam("account_id"))
        .order_by(page.c.id),
    )


OPEN_ORDERS = _open_orders()


def _price_levels(is_buy: bool, symbol, depth):
    """The best `depth` price levels of one side of `symbol`'s book, aggregated.

    A walk down the side's partial index (book_buys or book_sells): each step
    finds the next distinct price with one index probe, then sums the orders
    at that price, so the cost grows with the levels shown, not with the
    orders resting beyond them. `symbol` and `depth` are parameters, or the
    columns of an outer row (a poll walks every watched symbol's book).
    """
    price = orders.c.limit_price
    on_side = (orders.c.symbol == symbol, orders.c.side == _side(is_buy), orders.c.open_shares > 0)
    best_first = price.desc() if is_buy else price
    first = (
        select(price.label("price"), literal(1, Integer).label("level"))
        .where(*on_side)
        .order_by(best_first)
        .limit(1)
        .correlate_except(orders)
    )
    levels = first.cte(f"{_side(is_buy)}_levels", recursive=True, nesting=True)
    worse = price < levels.c.price if is_buy else price > levels.c.price
    following = (
        select(price)
        .where(*on_side, worse)
        .order_by(best_first)
        .limit(1)
        .correlate_except(orders)
        .scalar_subquery()
    )
    levels = levels.union_all(
        select(following, levels.c.level + 1)
        .where(levels.c.price.is_not(None), levels.c.level < depth)
        .correlate_except(levels)
    )
    at_level = (
        select(func.sum(orders.c.open_shares).label("shares"), func.count().label("orders"))
        .where(*on_side, price == levels.c.price)
        .correlate_except(orders)
        .lateral(f"{_side(is_buy)}_level")
    )
    return (
        select(
            literal(is_buy, Boolean).label("is_bid"),
            levels.c.level,
            levels.c.price,
            at_level.c.shares,
            at_level.c.orders,
        )
        .select_from(levels.join(at_level, true()))
        .where(levels.c.price.is_not(None))
    )


def _sides(symbol, depth):
    """Both sides of `symbol`'s book, `depth` levels each, as one subquery (see `_price_levels`)."""
    return union_all(
        _price_levels(True, symbol, depth), _price_levels(False, symbol, depth)
    ).subquery("sides")


def _book() -> Statement:
    """Both sides of `:symbol`'s book, bids first, each best first; none if no such symbol.

    A symbol with an empty book gives one row with no level.
    """
    sides = _sides(bindparam("symbol", type_=Text), bindparam("depth", type_=Integer))
    return Statement(
        "book",
        select(sides.c.is_bid, sides.c.price, sides.c.shares, sides.c.orders)
        .select_from(symbols.outerjoin(sides, true()))
        .where(symbols.c.symbol == bindparam("symbol", type_=Text))
        .order_by(sides.c.is_bid.desc(), sides.c.level),
    )


BOOK = _book()


def _tape(symbol, limit, after=None, oldest_first: bool = False):
    """`symbol`'s executions through the `tape` index (see `_one_of`), `limit` at most:
    the newest first, or the oldest first; only those after the id `after` when given."""
    tape_order = (executions.c.symbol, executions.c.id)
    conditions = [_one_of(executions.c.symbol, symbol)]
    if after is not None:
        conditions.append(executions.c.id > after)
    return (
        select(executions.c.id, executions.c.shares, executions.c.price, executions.c.executed_at)
        .where(*conditions)
        .order_by(*(tape_order if oldest_first else (column.desc() for column in tape_order)))
        .limit(limit)
    )


def _trades() -> Statement:
    """`:symbol`'s `:limit` latest executions, newest first.

    One row with no trade when there are none, none when no such symbol.
    """
    recent = _tape(symbols.c.symbol, bindparam("limit", type_=Integer)).lateral("recent")
    return Statement(
        "trades",
        select(recent.c.shares, recent.c.price, recent.c.executed_at)
        .select_from(symbols.outerjoin(recent, true()))
        .where(symbols.c.symbol == bindparam("symbol", type_=Text))
        .order_by(recent.c.id.desc()),
    )


TRADES = _trades()


# -- idempotent requests (SPEC §9) --------------------------------------------------


def _seconds(name: str):
    """A parameter counting seconds, as an interval."""
    return literal_column("interval '1 second'") * bindparam(name, type_=NUMBER)


_lease_end = func.clock_timestamp() + _seconds("lease_seconds")
# A claim and a reply commit without waiting for their WAL to reach the disk:
# a child's commit, which waits, flushes its claim with it (the WAL is written in
# order), and a reply lost to a crash in the few hundred milliseconds before the
# flush leaves the claim to lapse: a repeat answers the children from their records.
_UNSYNCED = func.set_config("synchronous_commit", "off", True).label("unsynced")
_request = (
    idempotent_requests.c.scope == bindparam("scope", type_=Text),
    idempotent_requests.c.key == bindparam("key", type_=Text),
)


def _claim() -> Statement:
    """Claim a request for an attempt: a new key, or one whose last attempt left it
    unanswered and let its lease run out, for the same document. Taking a claim
    over changes its attempt, which the children's records follow (ON UPDATE
    CASCADE) and an earlier attempt's next record no longer matches. One row when claimed,
    `attempts` 1 for a new key; none when the key is answered, running or another
    document's (the row is then read with REQUEST_CLAIM)."""
    new = upsert(idempotent_requests).values(
        scope=bindparam("scope"),
        key=bindparam("key"),
        fingerprint=bindparam("fingerprint"),
        attempt=bindparam("attempt"),
        lease_until=_lease_end,
    )
    existing = idempotent_requests.c
    return Statement(
        "claim_request",
        new.on_conflict_do_update(
            index_elements=[existing.scope, existing.key],
            set_={
                "attempt": new.excluded.attempt,
                "attempts": existing.attempts + 1,
                "lease_until": new.excluded.lease_until,
            },
            where=(existing.reply.is_(None))
            & (
                (existing.lease_until < func.clock_timestamp())
                | (existing.attempt == new.excluded.attempt)  # this attempt's, sent again
            )
            & (existing.fingerprint == new.excluded.fingerprint),
        ).returning(existing.attempts, _UNSYNCED),
    )


CLAIM_REQUEST = _claim()

# The empty reply kept for a request whose children all left a record: a repeat
# rebuilds the reply from the records. A reply of ours is never empty.
FROM_THE_RECORDS = b""

# A new key's claim, riding ahead of the first statement of the request's first child
# with an effect, in its transaction (or alone, with the whole reply, when no child
# committed anything). Its parameters are named apart from those of the statements it
# rides with. A key already claimed fails it, as does one being claimed by a
# transaction not yet ended, once that one commits (the insert waits for it).
CLAIM_KEY = Statement(
    "claim_key",
    insert(idempotent_requests).values(
        scope=bindparam("claimed_scope", type_=Text),
        key=bindparam("claimed_key", type_=Text),
        fingerprint=bindparam("claimed_fingerprint", type_=LargeBinary),
        attempt=bindparam("claimed_attempt", type_=BigInteger),
        lease_until=func.clock_timestamp() + _seconds("claimed_lease_seconds"),  # NULL: none
        reply=bindparam("claimed_reply", type_=LargeBinary),
    ),
)

REQUEST_CLAIM = Statement(
    "request_claim",
    select(
        (idempotent_requests.c.fingerprint == bindparam("fingerprint")).label("same_document"),
        idempotent_requests.c.reply,
    ).where(*_request),
)

RECORDED_CHILDREN = Statement(
    "recorded_children",
    select(idempotent_children.c.child, idempotent_children.c.order_id).where(
        idempotent_children.c.scope == bindparam("scope", type_=Text),
        idempotent_children.c.key == bindparam("key", type_=Text),
    ),
)

# Written in the message of the child's last statement, before COMMIT: the child's
# effect and its record commit together or not at all. Referencing the claiming
# attempt, the insert fails once another attempt has taken the claim over.
RECORD_CHILD = Statement(
    "record_child",
    insert(idempotent_children).values(
        scope=bindparam("scope", type_=Text),
        key=bindparam("key", type_=Text),
        attempt=bindparam("attempt", type_=BigInteger),
        child=bindparam("child", type_=Integer),
        # An order placed records the id its own statement drew, before this one.
        order_id=case(
            (bindparam("recorded_the_order_placed", type_=Boolean), _last_order_id),
            else_=bindparam("recorded_order_id", type_=BigInteger),
        ),
    ),
)

_ours = (*_request, idempotent_requests.c.attempt == bindparam("attempt", type_=BigInteger))

# Written with the record of the request's last child, when every child before it left
# one: the request is answered, and its reply is its records.
ANSWERED_BY_THE_RECORDS = Statement(
    "answered_by_the_records",
    update(idempotent_requests)
    .where(*_ours)
    .values(reply=literal(FROM_THE_RECORDS, LargeBinary), lease_until=null()),
)

RECORD_REPLY = Statement(
    "record_reply",
    update(idempotent_requests)
    .where(*_ours)
    .values(reply=bindparam("reply"), lease_until=null())
    .returning(idempotent_requests.c.attempt, _UNSYNCED),
)

RENEW_LEASE = Statement(
    "renew_lease",
    update(idempotent_requests)
    .where(*_ours, idempotent_requests.c.reply.is_(None))
    .values(lease_until=_lease_end)
    .returning(idempotent_requests.c.attempt),
)

RELEASE_CLAIM = Statement(
    "release_claim",
    update(idempotent_requests)
    .where(*_ours, idempotent_requests.c.reply.is_(None))
    .values(lease_until=func.clock_timestamp()),
)


def _purge() -> Statement:
    """Delete up to `:batch` requests older than `:keep_seconds`, oldest first, with
    their children's records, skipping rows another transaction holds: a purge
    never waits, and no request waits for it longer than one small batch."""
    expired = (
        select(idempotent_requests.c.scope, idempotent_requests.c.key)
        .where(idempotent_requests.c.created_at < func.clock_timestamp() - _seconds("keep_seconds"))
        .order_by(idempotent_requests.c.created_at)
        .limit(bindparam("batch", type_=Integer))
        .with_for_update(skip_locked=True)
    )
    return Statement(
        "purge_requests",
        idempotent_requests.delete()
        .where(tuple_(idempotent_requests.c.scope, idempotent_requests.c.key).in_(expired))
        .returning(idempotent_requests.c.key),
    )


PURGE_REQUESTS = _purge()
# -- live market data (SPEC §10): one statement per poll, whatever the audience ----

MARKET_PAGE = 1000  # a symbol's new trades per poll at most; the rest come with the next
RESUMABLE = 1000  # trades a resuming stream can get back: the symbol's last 1,000

SYMBOL_EXISTS = Statement(
    "symbol_exists", select(symbols.c.symbol).where(symbols.c.symbol == bindparam("symbol"))
)


def _symbols() -> Statement:
    """Every symbol with its last trade's price and time (none if it never traded), in byte
    order: one probe of the tape index per symbol."""
    last = _tape(symbols.c.symbol, 1).lateral("last")
    return Statement(
        "symbols",
        select(symbols.c.symbol, last.c.price, last.c.executed_at)
        .select_from(symbols.outerjoin(last, true()))
        .order_by(symbols.c.symbol.collate("C")),
    )


SYMBOLS = _symbols()


# The columns of a poll's rows; each part fills some and leaves the others null.
_POLL_COLUMNS = {
    "symbol": Text,
    "after": BigInteger,
    "id": BigInteger,
    "shares": NUMBER,
    "price": NUMBER,
    "executed_at": DateTime(timezone=True),
    "is_bid": Boolean,
    "level": Integer,
    "orders": BigInteger,
}


def _poll_part(name: str, **given) -> Select:
    """One part of a poll's rows: the columns `given`, typed nulls for the others."""
    return select(
        literal(name, Text).label("part"),
        *(
            (given[column] if column in given else cast(null(), kind)).label(column)
            for column, kind in _POLL_COLUMNS.items()
        ),
    )


def _trade_columns(trades) -> dict:
    return {name: trades.c[name] for name in ("id", "shares", "price", "executed_at")}


def _poll_market() -> Statement:
    """What changed on the watched symbols, in one snapshot: rows of four parts.

    `:watched_*` name each watched symbol, the depth of book its streams want,
    and the last trade they have (null for a symbol watched from now on).
    `head`: per watched symbol that exists, its latest trade's id (null if it
    never traded); `level`: its book, as BOOK's rows; `trade`: its trades after
    `after`, oldest first, `:page` at most. `:resumed_*` are streams coming
    back (SPEC §10): `resumed` rows are the trades after their `after` among
    the symbol's last RESUMABLE, each row naming the pair it answers.
    """
    watched = _rows("watched", symbol=Text, depth=Integer, after=BigInteger)
    resumed = _rows("resumed", symbol=Text, after=BigInteger)
    latest = _tape(watched.c.symbol, 1).with_only_columns(executions.c.id).scalar_subquery()
    sides = _sides(watched.c.symbol, watched.c.depth).lateral("sides")
    page = bindparam("page", type_=Integer)
    new = _tape(watched.c.symbol, page, watched.c.after, oldest_first=True).lateral("new")
    recent = _tape(resumed.c.symbol, RESUMABLE, resumed.c.after).lateral("recent")
    rows = union_all(
        _poll_part("head", symbol=watched.c.symbol, id=latest).select_from(
            watched.join(symbols, symbols.c.symbol == watched.c.symbol)
        ),
        _poll_part(
            "level",
            symbol=watched.c.symbol,
            **{name: sides.c[name] for name in ("price", "shares", "is_bid", "level", "orders")},
        ).select_from(watched.join(sides, true())),
        _poll_part("trade", symbol=watched.c.symbol, **_trade_columns(new)).select_from(
            watched.join(new, true())
        ),
        _poll_part(
            "resumed", symbol=resumed.c.symbol, after=resumed.c.after, **_trade_columns(recent)
        ).select_from(resumed.join(recent, true())),
    ).subquery("changes")
    return Statement(
        "poll_market",
        select(rows).order_by(
            rows.c.part,
            rows.c.symbol,
            rows.c.after,
            rows.c.is_bid.desc(),
            rows.c.level,
            rows.c.id,
        ),
    )


POLL_MARKET = _poll_market()
