"""The locking order under contention: no deadlock, no lost update, books balanced."""

import random
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
