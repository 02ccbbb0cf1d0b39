"""The keys and the nonces they have used: the only code that reads or writes their tables.

A request with a valid signature is admitted by one INSERT of its nonce,
which fails on a second use (the primary key: whichever worker or host sends
it, raced or not) and for a revoked key (no live key to record); with a rate
limit, the key's token bucket is drawn alongside, and an empty bucket fails
its constraint. That work is carried by the request's first message to the
database, inside the transaction it opens (app/storage/session.py,
`Ahead`): no round trip of its own, and nothing of that transaction runs
when it fails. Keys never change but for their revocation, so what a key
may do is read once per process (`key`).
"""

import datetime
import math
import secrets
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import (
    ARRAY,
    DateTime,
    Engine,
    Text,
    bindparam,
    delete,
    func,
    literal_column,
    select,
)
from sqlalchemy.dialects.postgresql import insert as upsert
from sqlalchemy.exc import DBAPIError

from app.auth.keys import Key
from app.auth.refusals import AuthenticationFailed, RateLimited
from app.storage.schema import NUMBER, api_keys, auth_buckets, auth_nonces
from app.storage.session import Ahead, Statement, execute_alone, send_ahead

KEY_ID_BYTES = 15  # 20 characters of URL-safe base64
NONCES_KEPT_S = 60  # past the end of their clock window, for clocks that disagree
UNIQUE_VIOLATION, NOT_NULL_VIOLATION, CHECK_VIOLATION = "23505", "23502", "23514"


@dataclass(frozen=True)
class IssuedKey:
    id: str
    account_id: str | None
    permissions: tuple[str, ...]
    created_at: datetime.datetime
    revoked_at: datetime.datetime | None


@dataclass(frozen=True)
class RateLimit:
    """`per_second` requests per key on average, `burst` at once."""

    per_second: Decimal
    burst: Decimal


KEY = Statement(
    "key",
    select(api_keys.c.account_id, api_keys.c.permissions, api_keys.c.revoked_at).where(
        api_keys.c.id == bindparam("key_id", type_=Text)
    ),
)

_live_key = (
    select(api_keys.c.id)
    .where(api_keys.c.id == bindparam("admitted_key", type_=Text), api_keys.c.revoked_at.is_(None))
    .scalar_subquery()
)
ADMIT = Statement(
    "admit",
    auth_nonces.insert().values(
        key_id=_live_key,
        nonce=bindparam("admitted_nonce", type_=Text),
        expires_at=bindparam("admitted_until", type_=DateTime(timezone=True)),
    ),
)


def _take_token() -> Statement:
    """A token from the key's bucket, which refills at `:rate` a second up to `:burst`; a
    new bucket starts full."""
    rate, burst = bindparam("rate", type_=NUMBER), bindparam("burst", type_=NUMBER)
    elapsed = func.extract("epoch", func.now() - auth_buckets.c.updated_at)
    new = upsert(auth_buckets).values(
        key_id=bindparam("admitted_key", type_=Text), tokens=burst - 1, updated_at=func.now()
    )
    return Statement(
        "take_token",
        new.on_conflict_do_update(
            index_elements=[auth_buckets.c.key_id],
            set_={
                "tokens": func.least(burst, auth_buckets.c.tokens + elapsed * rate) - 1,
                "updated_at": func.now(),
            },
        ),
    )


TAKE_TOKEN = _take_token()

ISSUE = Statement(
    "issue_key",
    api_keys.insert().values(
        id=bindparam("key_id", type_=Text),
        account_id=bindparam("account_id", type_=Text),
        permissions=bindparam("permissions", type_=ARRAY(Text)),
    ),
)

LIST = Statement(
    "list_keys",
    select(
        api_keys.c.id,
        api_keys.c.account_id,
        api_keys.c.permissions,
        api_keys.c.created_at,
        api_keys.c.revoked_at,
    ).order_by(api_keys.c.created_at, api_keys.c.id),
)

# One row when the key exists: `newly` tells whether this call revoked it.
_revoked = (
    api_keys.update()
    .where(api_keys.c.id == bindparam("key_id", type_=Text), api_keys.c.revoked_at.is_(None))
    .values(revoked_at=func.clock_timestamp())
    .returning(api_keys.c.id)
    .cte("revoked")
)
REVOKE = Statement(
    "revoke_key",
    select(select(_revoked.c.id).exists().label("newly"))
    .select_from(api_keys)
    .where(api_keys.c.id == bindparam("key_id", type_=Text)),
)

PURGE_NONCES = Statement(
    "purge_nonces",
    delete(auth_nonces).where(
        auth_nonces.c.expires_at < func.now() - literal_column(f"interval '{NONCES_KEPT_S} s'")
    ),
)


class KeyStore:
    """Keys and nonces on the exchange's engine (autocommit: each statement commits alone)."""

    def __init__(self, engine: Engine, rate_limit: RateLimit | None = None):
        self._engine = engine
        self._rate_limit = rate_limit

    def key(self, key_id: str) -> Key:
        """What the key may do; raises AuthenticationFailed when it is unknown or revoked."""
        rows = self._run(KEY, {"key_id": key_id})
        if not rows:
            raise AuthenticationFailed("unknown_key")
        if rows[0].revoked_at is not None:
            raise AuthenticationFailed("revoked")
        return Key(key_id, rows[0].account_id, frozenset(rows[0].permissions))

    def admission(self, key: Key, nonce: str, until: datetime.datetime) -> Ahead:
        """The nonce recorded (and a token taken), ahead of the request's first statement."""
        statements, parameters = (ADMIT,), {"admitted_key": key.id, "admitted_nonce": nonce}
        parameters["admitted_until"] = until
        limit = self._rate_limit
        if limit:
            statements += (TAKE_TOKEN,)
            parameters |= {"rate": limit.per_second, "burst": limit.burst}

        def refusal(error: DBAPIError) -> Exception | None:
            code, diagnosis = getattr(error.orig, "pgcode", None), getattr(error.orig, "diag", None)
            table = diagnosis.table_name if diagnosis else None
            if (code, table) == (UNIQUE_VIOLATION, auth_nonces.name):
                return AuthenticationFailed("replayed")
            if (code, table) == (NOT_NULL_VIOLATION, auth_nonces.name):
                return AuthenticationFailed("revoked")
            if (code, table) == (CHECK_VIOLATION, auth_buckets.name):
                return RateLimited(key, math.ceil(1 / limit.per_second))  # a token at the most
            return None

        return Ahead(statements, parameters, refusal)

    def admit_alone(self, ahead: Ahead) -> None:
        """Send an admission no statement of its request carried."""
        with self._engine.connect() as connection:
            send_ahead(connection, ahead)

    def issue(self, account_id: str | None, permissions: tuple[str, ...]) -> str:
        key_id = secrets.token_urlsafe(KEY_ID_BYTES)
        parameters = {"key_id": key_id, "account_id": account_id, "permissions": list(permissions)}
        self._run(ISSUE, parameters)
        return key_id

    def keys(self) -> list[IssuedKey]:
        return [
            IssuedKey(
                row.id, row.account_id, tuple(row.permissions), row.created_at, row.revoked_at
            )
            for row in self._run(LIST, {})
        ]

    def revoke(self, key_id: str) -> bool | None:
        """True when revoked now, False when it already was, None when there is no such key."""
        rows = self._run(REVOKE, {"key_id": key_id})
        return rows[0].newly if rows else None

    def purge_nonces(self) -> None:
        """Forget nonces whose proofs the clock check refuses anyway."""
        self._run(PURGE_NONCES, {})

    def _run(self, statement: Statement, parameters: dict) -> list[tuple]:
        """One statement; once more on a fresh connection when its pooled one turns out to
        have been dropped by the server (after a restart, say), as the exchange does."""
        try:
            with self._engine.connect() as connection:
                return execute_alone(connection, statement, **parameters)
        except DBAPIError as error:
            if not error.connection_invalidated:
                raise
        with self._engine.connect() as connection:
            return execute_alone(connection, statement, **parameters)
