"""The tables, declared once, with constraints that make impossible states unrepresentable.

Money and shares are unconstrained `NUMERIC`: exact, never rounded. The
audit trail the conservation laws need (opening balances, minted shares) is
kept next to the state it explains.
"""

from sqlalchemy import (
    ARRAY,
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    Sequence,
    Table,
    Text,
    UniqueConstraint,
    func,
    inspect,
    text,
)
from sqlalchemy.engine import Connection, Engine

metadata = MetaData()

NUMBER = Numeric(asdecimal=True)


def _timestamp(name: str, nullable: bool = False) -> Column:
    """Microsecond timestamps from the database's clock, so every worker agrees."""
    return Column(
        name,
        DateTime(timezone=True),
        nullable=nullable,
        server_default=None if nullable else func.clock_timestamp(),
    )


accounts = Table(
    "accounts",
    metadata,
    Column("id", Text, primary_key=True),
    Column("balance", NUMBER, nullable=False),
    Column("deposited", NUMBER, nullable=False),
    _timestamp("created_at"),
    CheckConstraint("id ~ '^[0-9]{1,64}$'", name="account_id_digits"),
    CheckConstraint("balance >= 0", name="balance_not_negative"),
    CheckConstraint("deposited >= 0", name="deposit_not_negative"),
)

symbols = Table(
    "symbols",
    metadata,
    Column("symbol", Text, primary_key=True),
    _timestamp("created_at"),
    CheckConstraint("symbol ~ '^[A-Za-z0-9]{1,32}$'", name="symbol_alphanumeric"),
)

positions = Table(
    "positions",
    metadata,
    Column("account_id", Text, ForeignKey("accounts.id"), nullable=False),
    Column("symbol", Text, ForeignKey("symbols.symbol"), nullable=False),
    Column("shares", NUMBER, nullable=False),
    PrimaryKeyConstraint("account_id", "symbol"),
    CheckConstraint("shares >= 0", name="position_not_negative"),
)

mints = Table(
    "mints",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("account_id", Text, ForeignKey("accounts.id"), nullable=False),
    Column("symbol", Text, ForeignKey("symbols.symbol"), nullable=False),
    Column("shares", NUMBER, nullable=False),
    _timestamp("created_at"),
    CheckConstraint("shares > 0", name="mint_positive"),
)

order_ids = Sequence("order_ids", metadata=metadata, start=1)

orders = Table(
    "orders",
    metadata,
    Column("id", BigInteger, order_ids, primary_key=True, server_default=order_ids.next_value()),
    Column("account_id", Text, ForeignKey("accounts.id"), nullable=False),
    Column("symbol", Text, ForeignKey("symbols.symbol"), nullable=False),
    Column("side", Text, nullable=False),
    Column("shares", NUMBER, nullable=False),
    Column("limit_price", NUMBER, nullable=False),
    Column("open_shares", NUMBER, nullable=False),
    Column("executed_shares", NUMBER, nullable=False, server_default=text("0")),
    Column("canceled_shares", NUMBER, nullable=False, server_default=text("0")),
    _timestamp("created_at"),
    _timestamp("canceled_at", nullable=True),
    CheckConstraint("side IN ('buy', 'sell')", name="order_side_valid"),
    CheckConstraint("shares > 0", name="order_shares_positive"),
    CheckConstraint("limit_price > 0", name="order_limit_positive"),
    CheckConstraint("open_shares >= 0", name="order_open_not_negative"),
    CheckConstraint("executed_shares >= 0", name="order_executed_not_negative"),
    CheckConstraint("canceled_shares >= 0", name="order_canceled_not_negative"),
    CheckConstraint(
        "open_shares + executed_shares + canceled_shares = shares", name="order_shares_add_up"
    ),
    CheckConstraint(
        "(canceled_at IS NULL) = (canceled_shares = 0)"
        " AND (canceled_at IS NULL OR open_shares = 0)",
        name="order_cancel_consistent",
    ),
)

# The book: best price first, then arrival (ids grow in arrival order per symbol,
# because they are drawn under the symbol's lock). Only open orders are indexed,
# so the index stays as small as the book however long the history grows.
Index(
    "book_buys",
    orders.c.symbol,
    orders.c.limit_price.desc(),
    orders.c.id,
    postgresql_where=(orders.c.side == "buy") & (orders.c.open_shares > 0),
)
Index(
    "book_sells",
    orders.c.symbol,
    orders.c.limit_price,
    orders.c.id,
    postgresql_where=(orders.c.side == "sell") & (orders.c.open_shares > 0),
)

# An account's open orders in arrival order: its statement's reservations and its
# pages of open orders read these alone, however many orders it placed before.
Index(
    "open_orders_by_account",
    orders.c.account_id,
    orders.c.id,
    postgresql_where=orders.c.open_shares > 0,
)

executions = Table(
    "executions",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("symbol", Text, ForeignKey("symbols.symbol"), nullable=False),
    Column("buy_order_id", BigInteger, ForeignKey("orders.id"), nullable=False, index=True),
    Column("sell_order_id", BigInteger, ForeignKey("orders.id"), nullable=False, index=True),
    Column("shares", NUMBER, nullable=False),
    Column("price", NUMBER, nullable=False),
    _timestamp("executed_at"),
    CheckConstraint("shares > 0", name="execution_shares_positive"),
    CheckConstraint("price > 0", name="execution_price_positive"),
)

# The tape: a symbol's executions newest first (ids grow in execution order per
# symbol, as executions are written under the symbol's lock).
Index("tape", executions.c.symbol, executions.c.id)

# -- who may act for whom (SPEC §8): API keys, the nonces they have used, their rate.
# Nothing here lets a reader of the database sign a request: a key's secret is
# derived from the service's master secret, which never enters the database
# (app/auth/secret.py). Only app/auth/store.py reads or writes these tables.

PERMISSIONS = ("admin", "trade", "read")

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Text, primary_key=True),
    Column("account_id", Text, nullable=True),  # none for an admin key
    Column("permissions", ARRAY(Text), nullable=False),
    _timestamp("created_at"),
    _timestamp("revoked_at", nullable=True),
    CheckConstraint("id ~ '^[A-Za-z0-9_-]{1,64}$'", name="key_id_charset"),
    CheckConstraint("account_id ~ '^[0-9]{1,64}$'", name="key_account_digits"),
    CheckConstraint(
        "cardinality(permissions) > 0 AND permissions <@ ARRAY['admin', 'trade', 'read']",
        name="key_permissions_known",
    ),
    CheckConstraint(
        "CASE WHEN account_id IS NULL THEN permissions = ARRAY['admin']"
        " ELSE NOT 'admin' = ANY (permissions) END",
        name="key_admin_xor_account",
    ),
)

# A (key, nonce) pair is accepted once: the primary key refuses a second row,
# whichever worker or host sends it; `key_id` is null, and refused, when the
# key is revoked. Rows go once their proof's time no longer passes the clock check.
auth_nonces = Table(
    "auth_nonces",
    metadata,
    Column("key_id", Text, nullable=False),
    Column("nonce", Text, nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("key_id", "nonce"),
)

# A token bucket per key, when requests per key are limited: `tokens` as of
# `updated_at`. A request takes one; none left breaks the constraint.
auth_buckets = Table(
    "auth_buckets",
    metadata,
    Column("key_id", Text, primary_key=True),
    Column("tokens", NUMBER, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("tokens >= 0", name="bucket_not_overdrawn"),
)

# Idempotent requests (SPEC §9): a request named by a key, per scope (the acting
# account, or "create"), claimed by one attempt at a time. `attempt` changes when a
# repeat takes over a claim whose lease ran out; the children's records reference
# it, so the old attempt can commit no child once it has lost the claim.
idempotent_requests = Table(
    "idempotent_requests",
    metadata,
    Column("scope", Text, nullable=False),
    Column("key", Text, nullable=False),
    Column("fingerprint", LargeBinary, nullable=False),  # SHA-256 of the document
    Column("attempt", BigInteger, nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("1")),
    _timestamp("lease_until", nullable=True),  # while an attempt runs; NULL once answered
    Column("reply", LargeBinary, nullable=True),  # the reply's bytes, once answered
    _timestamp("created_at"),
    PrimaryKeyConstraint("scope", "key"),
    UniqueConstraint("scope", "key", "attempt", name="idempotent_request_attempt"),
    CheckConstraint("key ~ '^[A-Za-z0-9_-]{1,64}$'", name="idempotency_key_valid"),
    CheckConstraint("(reply IS NULL) = (lease_until IS NOT NULL)", name="answered_or_leased"),
)
# Rows arrive in time order, so a block-range index finds the oldest for the purge at
# a fraction of a b-tree's cost per claim.
Index("idempotent_requests_by_age", idempotent_requests.c.created_at, postgresql_using="brin")

# One row per child of an idempotent request whose effect committed, written in the
# child's own transaction: the proof that it ran, and what a repeat answers for it.
idempotent_children = Table(
    "idempotent_children",
    metadata,
    Column("scope", Text, nullable=False),
    Column("key", Text, nullable=False),
    Column("attempt", BigInteger, nullable=False),
    Column("child", Integer, nullable=False),
    Column("order_id", BigInteger, nullable=True),  # the order placed or canceled, if any
    PrimaryKeyConstraint("scope", "key", "child"),
    ForeignKeyConstraint(
        ["scope", "key", "attempt"],
        [idempotent_requests.c.scope, idempotent_requests.c.key, idempotent_requests.c.attempt],
        name="child_of_the_claiming_attempt",
        onupdate="CASCADE",
        ondelete="CASCADE",
    ),
)

# Any constant works; it only has to be the same for every process creating the schema.
_SCHEMA_LOCK = 0x45584348


def create_schema(engine: Engine) -> None:
    """Create missing tables and indexes once; concurrent callers queue on an advisory lock."""
    with engine.begin() as connection:
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK})
        metadata.create_all(connection, checkfirst=True)
        for table in metadata.sorted_tables:  # indexes added since the tables were created
            for index in table.indexes:
                index.create(connection, checkfirst=True)


def missing_tables(connection: Connection) -> list[str]:
    """Tables of the schema the database lacks: empty once `create_schema` has run."""
    present = set(inspect(connection).get_table_names())
    return [table.name for table in metadata.sorted_tables if table.name not in present]
