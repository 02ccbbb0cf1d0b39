"""`python -m bench.keys`: keys for the workload's accounts, for load with authentication on.

    EXCHANGE_AUTH=on make run                              # one terminal
    .venv/bin/python -m bench.keys var/load/keys.json      # another
    make load LOAD_AUTH_KEYS=var/load/keys.json

It issues an admin key and one `trade,read` key per account of the workload's
shape (the LOAD_* settings), with the service's database and master secret
settings, as `python -m app.auth create` would one at a time, and writes them
to a file readable by its owner only (LOAD_AUTH_KEYS for locust).
"""

import argparse
import os
import sys

from app.auth.permissions import ADMIN, READ, TRADE
from app.auth.proof import Credentials
from app.auth.secret import key_secret, master_secret
from app.auth.store import KeyStore
from app.config import database_url
from app.storage.engine import exchange_engine
from app.storage.schema import create_schema
from bench.workload import Keys, Shape


def issue_keys(url: str, master: bytes, shape: Shape) -> Keys:
    engine = exchange_engine(url, pool_size=1)
    try:
        create_schema(engine)
        store = KeyStore(engine)

        def issue(account: str | None, *permissions: str) -> Credentials:
            key = store.issue(account, permissions)
            return Credentials(key, key_secret(master, key))

        accounts = (shape.account(index) for index in range(shape.accounts))
        return Keys(
            issue(None, ADMIN), {account: issue(account, TRADE, READ) for account in accounts}
        )
    finally:
        engine.dispose()


def main(argv: list[str] | None = None, environ=os.environ) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.keys", description=__doc__.split("\n")[0]
    )
    parser.add_argument("path", help="where to write the keys (JSON)")
    args = parser.parse_args(argv)
    shape = Shape.from_env(environ)
    issue_keys(database_url(environ), master_secret(environ), shape).save(args.path)
    print(f"{shape.accounts + 1} keys written to {args.path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
