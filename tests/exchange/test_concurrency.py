"""The locking order under contention: no deadlock, no lost update, books balanced; and
reads, taking no locks, seeing one consistent snapshot each while orders cross."""

import random
import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal as D

from app.audit import audit
from app.exchange.errors import Rejected

THREADS = 8
ORDERS_PER_THREAD = 60
SYMBOLS = ("A", "B", "C")


def test_threads_trading_across_symbols_never_deadlock(market, engine):
    accounts = [str(n) for n in range(1, 9)]
    for account in accounts:
        market.account(account, 1_000_000)
        for symbol in SYMBOLS:
            market.grant(account, symbol, 10_000)

    def trader(seed: int) -> int:
        rng = random.Random(seed)
        mine = []
        for _ in range(ORDERS_PER_THREAD):
            account = rng.choice(accounts)
            if mine and rng.random() < 0.2:
                owner, order = mine.pop(rng.randrange(len(mine)))
                try:
                    market.cancel(owner, order)
                except Rejected:
                    pass  # fully executed meanwhile
                continue
            amount = D(rng.randint(1, 20)) * rng.choice((1, -1))
            order = market.order(account, rng.choice(SYMBOLS), amount, D(rng.randint(98, 102)))
            mine.append((account, order))
        return len(mine)

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(trader, range(THREADS)))

    assert market.exchange.retries == 0, "a fixed locking order should never deadlock"
    assert [(f.check, f.violations) for f in audit(engine) if f.violations] == []


def test_readers_polling_while_orders_cross_always_see_consistent_snapshots(market, engine):
    """Books never crossed, in price order; a statement never shows half of a flow.

    Account 9 trades symbol S with itself alone (its trades move nothing), so
    every statement of it must show its deposit and its minted shares in full:
    spendable plus reserved. Accounts 1-4 cross orders on A meanwhile.
    """
    traders = [str(n) for n in range(1, 5)]
    for account in traders:
        market.account(account, 1_000_000)
        market.grant(account, "A", 10_000)
    market.account("9", 1_000_000)
    market.grant("9", "S", 1_000)
    trading = threading.Event()
    trading.set()

    def trade(account: str, symbol: str, seed: int) -> None:
        rng = random.Random(seed)
        mine = []
        for _ in range(ORDERS_PER_THREAD):
            if mine and rng.random() < 0.2:
                try:
                    market.cancel(account, mine.pop(rng.randrange(len(mine))))
                except Rejected:
                    pass  # fully executed meanwhile
                continue
            amount = D(rng.randint(1, 20)) * rng.choice((1, -1))
            mine.append(market.order(account, symbol, amount, D(rng.randint(98, 102))))

    def read() -> int:
        snapshots = 0
        while trading.is_set():
            for symbol in ("A", "S"):
                book = market.book(symbol, depth=1000)
                bids = [level.price for level in book.bids]
                asks = [level.price for level in book.asks]
                assert bids == sorted(bids, reverse=True) and asks == sorted(asks)
                assert not (bids and asks and bids[0] >= asks[0]), f"crossed: {bids} {asks}"
            statement = market.statement("9")
            assert statement.balance + statement.reserved == 1_000_000
            assert [(h.symbol, h.shares + h.reserved) for h in statement.holdings] == [("S", 1000)]
            snapshots += 1
        return snapshots

    with ThreadPoolExecutor(len(traders) + 3) as pool:
        readers = [pool.submit(read) for _ in range(2)]
        orders = [pool.submit(trade, account, "A", n) for n, account in enumerate(traders)]
        orders.append(pool.submit(trade, "9", "S", 99))
        try:
            for placed in orders:
                placed.result()
        finally:
            trading.clear()
        assert all(reader.result() > 0 for reader in readers)
    assert [(f.check, f.violations) for f in audit(engine) if f.violations] == []
