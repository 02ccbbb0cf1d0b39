"""SPEC §8's bound on an account's open orders: an order beyond it is refused, exactly, however
many of the account's orders arrive at once."""

import threading

import pytest

from app.exchange.errors import Rejected
from app.exchange.transactions import Exchange
from tests.exchange.conftest import CASH
from tests.exchange.market import Market

MOST = 3


@pytest.fixture
def bounded(engine, exchange_engine) -> Market:
    """Accounts 1 and 2, account 2 holding X; at most MOST open orders an account."""
    market = Market(Exchange(exchange_engine, max_open_orders=MOST), engine)
    market.account("1", CASH)
    market.account("2", CASH)
    market.grant("2", "X", 10_000)
    return market


def test_an_order_beyond_the_bound_is_refused_and_reserves_nothing(bounded):
    for limit in range(MOST):
        bounded.buy("1", "X", 1, 10 + limit)
    balance = bounded.balance("1")
    with pytest.raises(Rejected, match="too many open orders"):
        bounded.buy("1", "X", 1, 20)
    assert bounded.balance("1") == balance
    assert bounded.sell("2", "X", 1, 1)  # another account's orders are its own affair


def test_an_order_closed_makes_room_for_another(bounded):
    orders = [bounded.buy("1", "X", 1, 10 + limit) for limit in range(MOST)]
    bounded.cancel("1", orders[0])
    bounded.sell("2", "X", 1, 11)  # fills orders[1]
    bounded.buy("1", "X", 1, 5)
    bounded.buy("1", "X", 1, 5)
    with pytest.raises(Rejected, match="too many open orders"):
        bounded.buy("1", "X", 1, 5)


def test_the_bound_holds_when_the_accounts_orders_arrive_at_once_on_many_symbols(bounded):
    symbols = [f"S{number}" for number in range(12)]
    for symbol in symbols:
        bounded.grant("2", symbol, 1)
    start = threading.Barrier(len(symbols))
    refused = []

    def place(symbol: str):
        start.wait()
        try:
            bounded.buy("1", symbol, 1, 10)
        except Rejected as rejection:
            refused.append(str(rejection))

    placing = [threading.Thread(target=place, args=(symbol,)) for symbol in symbols]
    for thread in placing:
        thread.start()
    for thread in placing:
        thread.join()
    assert refused == ["too many open orders"] * (len(symbols) - MOST)
    assert len(bounded.open_orders("1").orders) == MOST


def test_with_the_bound_an_order_takes_one_round_trip_more(bounded, sent):
    sent.clear()
    bounded.buy("1", "X", 1, 10)
    assert len(sent) == 3
    assert sent[1].startswith("EXECUTE open_order_count(")
