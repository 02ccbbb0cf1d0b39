"""The figures of the capacity model (docs/scalability.md) that `make bench` does not take.

    .venv/bin/python -m bench.capacity        # about a minute, on a cluster of its own

On a throwaway PostgreSQL of the same settings as `make bench`'s, in-process
(no HTTP): how long an order holds its symbol's lock, the ceiling of one
symbol (1 / that time); what the WAL takes per order and per keyed request;
and how fast this disk flushes the WAL (pg_test_fsync), which bounds the
commits a single primary can make. The CPU per request of each tier comes
from `make bench` (its "CPU ms per request by tier" table).
"""

import re
import statistics
import subprocess
import sys
import time
from decimal import Decimal

from sqlalchemy import text

from app.exchange.commands import CreateAccount, CreateSymbol, MintShares, PlaceOrder
from app.exchange.transactions import Exchange
from app.idempotency.requests import Requests
from app.local.cluster import temporary_cluster
from app.protocol import parse_request
from app.storage.engine import database_engine, exchange_engine
from app.storage.schema import create_schema

ORDERS = 2000
WAL = text("SELECT wal_records, wal_bytes, wal_sync FROM pg_stat_wal")


def main() -> int:
    with temporary_cluster() as cluster:
        url = cluster.url()
        setup = database_engine(url, pool_size=1)
        create_schema(setup)
        engine = exchange_engine(url, pool_size=1)
        exchange = Exchange(engine)
        exchange.create_account(CreateAccount("1", Decimal(10**11)))
        exchange.create_symbol(CreateSymbol("S"))
        exchange.mint_shares(MintShares("S", "1", Decimal(10**9)))
        print(held_lock(exchange))
        print(wal_per_request(exchange, setup, keyed=False))
        print(wal_per_request(exchange, setup, keyed=True))
        print(fsync(cluster.bindir(), cluster.datadir))
        engine.dispose()
        setup.dispose()
    return 0


def _orders(count: int):
    """A buy that rests, then a sell that takes it: every order writes its fills."""
    for number in range(count):
        side = 1 if number % 2 == 0 else -1
        yield PlaceOrder("1", "S", Decimal(side), Decimal(10))


def held_lock(exchange: Exchange) -> str:
    """An order's transaction from its first message to its commit, one client alone:
    the longest its symbol's lock can be held without waiting on anyone."""
    times = []
    for order in _orders(ORDERS):
        started = time.perf_counter()
        exchange.place_order(order)
        times.append(time.perf_counter() - started)
    median = statistics.median(times) * 1000
    p90 = statistics.quantiles(times, n=10)[-1] * 1000
    return (
        f"order transaction, one client: median {median:.3f} ms, p90 {p90:.3f} ms "
        f"-> one symbol at most {1000 / median:.0f} orders/s"
    )


def wal_per_request(exchange: Exchange, engine, keyed: bool) -> str:
    """WAL records, bytes and flushes per order (with its claim and record when keyed),
    as a request of one order writes them."""
    requests = Requests(exchange)
    with engine.connect() as connection:
        before = connection.execute(WAL).one()
    for number, order in enumerate(_orders(ORDERS)):
        if not keyed:
            exchange.place_order(order)
            continue
        document = (
            f'<transactions id="{order.account_id}"><order sym="{order.symbol}" '
            f'amount="{order.amount}" limit="{order.limit}"/></transactions>'
        ).encode()
        requests.answer(parse_request(document), f"k{number}", document)
    with engine.connect() as connection:
        after = connection.execute(WAL).one()
    records, size, syncs = ((a - b) / ORDERS for a, b in zip(after, before, strict=True))
    kind = "keyed request" if keyed else "order"
    return f"per {kind}: {records:.1f} WAL records, {size:.0f} bytes, {syncs:.2f} flushes"


def fsync(bindir, datadir) -> str:
    """pg_test_fsync's figure for the method PostgreSQL uses here (fdatasync)."""
    result = subprocess.run(
        [str(bindir / "pg_test_fsync"), "-s", "2", "-f", str(datadir / "fsync-test")],
        capture_output=True,
        text=True,
    )
    match = re.search(r"fdatasync\s+([\d,.]+) ops/sec\s+([\d,.]+) usecs/op", result.stdout)
    if match is None:
        return f"pg_test_fsync gave no fdatasync figure: {result.stdout[-300:]}{result.stderr}"
    return f"one WAL flush (fdatasync, 8 kB): {match.group(2)} us, {match.group(1)} flushes/s"


if __name__ == "__main__":
    sys.exit(main())
