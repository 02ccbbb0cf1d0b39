"""`python -m app.auth`: issue, list and revoke keys (SPEC §8), never through the protocol.

    python -m app.auth create --perms admin
    python -m app.auth create --account 123456 --perms trade,read
    python -m app.auth list
    python -m app.auth revoke KEY

It uses the service's database settings (`DATABASE_URL`, or the local cluster
of `make run`, which must be running) and, to show a new key's secret, its
master secret (app/auth/secret.py). `create` prints the new key as one JSON
line, `{"key": ..., "secret": ...}`: the only time the secret is shown.
"""

import argparse
import datetime
import json
import os
import sys

from sqlalchemy.exc import DBAPIError

from app.auth.keys import ADMIN, READ, TRADE
from app.auth.secret import key_secret, master_secret
from app.auth.store import KeyStore
from app.client.reads import table
from app.config import database_url
from app.exchange.transactions import Exchange
from app.protocol.numbers import InvalidValue, account_id
from app.storage.engine import exchange_engine, first_line
from app.storage.schema import create_schema

ACCOUNT_PERMISSIONS = (TRADE, READ)


def main(argv: list[str] | None = None, environ=os.environ) -> int:
    args = _parser().parse_args(argv)
    url = database_url(environ)
    engine = exchange_engine(url, pool_size=1)
    try:
        create_schema(engine)
        return args.command(args, KeyStore(engine), engine, environ)
    except DBAPIError as error:
        where = engine.url.render_as_string(hide_password=True)
        print(f"cannot use the database at {where}: {first_line(error)}", file=sys.stderr)
        if not environ.get("DATABASE_URL"):
            print("(the local cluster runs while `make run` does)", file=sys.stderr)
        return 1
    except ValueError as error:  # the master secret's settings
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m app.auth", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(required=True)
    create = commands.add_parser("create", help="issue a key; prints its secret, once")
    create.add_argument("--account", type=_account, help="the account the key acts for")
    create.add_argument(
        "--perms",
        type=_permissions,
        required=True,
        help="admin (no account), or trade, read or trade,read (with --account)",
    )
    create.set_defaults(command=_create)
    listing = commands.add_parser("list", help="every key, revoked ones too; never secrets")
    listing.set_defaults(command=_list)
    revoke = commands.add_parser("revoke", help="revoke a key, at once, everywhere")
    revoke.add_argument("key")
    revoke.set_defaults(command=_revoke)
    return parser


def _account(text: str) -> str:
    try:
        return account_id(text, "account id")
    except InvalidValue as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _permissions(text: str) -> tuple[str, ...]:
    asked = {word.strip() for word in text.split(",")}
    if asked == {ADMIN}:
        return (ADMIN,)
    if asked and asked <= set(ACCOUNT_PERMISSIONS):
        return tuple(word for word in ACCOUNT_PERMISSIONS if word in asked)
    raise argparse.ArgumentTypeError(f"expected admin, or trade and/or read, not {text!r}")


def _create(args, store: KeyStore, engine, environ) -> int:
    admin = args.perms == (ADMIN,)
    if admin == (args.account is not None):
        what = "an admin key acts for no account" if admin else "trade and read need --account"
        print(f"error: {what}", file=sys.stderr)
        return 2
    master = master_secret(environ)
    if not admin and not Exchange(engine).account_exists(args.account):
        print(f"note: account {args.account} does not exist yet", file=sys.stderr)
    key = store.issue(args.account, args.perms)
    print(json.dumps({"key": key, "secret": key_secret(master, key)}), flush=True)
    return 0


def _list(args, store: KeyStore, engine, environ) -> int:
    rows = [
        (
            key.id,
            key.account_id or "-",
            ",".join(key.permissions),
            _utc(key.created_at),
            _utc(key.revoked_at) if key.revoked_at else "-",
        )
        for key in store.keys()
    ]
    print(table(("key", "account", "permissions", "created (UTC)", "revoked (UTC)"), rows))
    return 0


def _utc(moment: datetime.datetime) -> str:
    return f"{moment.astimezone(datetime.UTC):%Y-%m-%d %H:%M:%S}"


def _revoke(args, store: KeyStore, engine, environ) -> int:
    revoked = store.revoke(args.key)
    if revoked is None:
        print(f"error: no such key: {args.key}", file=sys.stderr)
        return 1
    print(f"revoked {args.key}" if revoked else f"{args.key} was already revoked")
    return 0
