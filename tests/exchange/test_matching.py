"""SPEC §4: price-time priority, execution at the resting limit, partial fills."""

from decimal import Decimal as D

from tests.exchange.conftest import CASH
from tests.exchange.market import fills


def test_worked_example(traders):
    m = traders
    o1 = m.buy("1", "X", 300, 125)
    o2 = m.sell("2", "X", 100, 130)
    o3 = m.buy("1", "X", 200, 127)
    o4 = m.sell("2", "X", 500, 128)
    o5 = m.sell("2", "X", 200, 140)
    o6 = m.buy("1", "X", 400, 125)
    assert all(not m.query(a, o).fills for a, o in [("1", o1), ("2", o2), ("1", o3)])

    o7 = m.sell("2", "X", 400, 124)

    assert fills(m.query("2", o7)) == [(200, 127), (200, 125)]
    assert m.query("2", o7).open_shares == 0
    assert fills(m.query("1", o3)) == [(200, 127)]
    assert m.query("1", o3).open_shares == 0
    assert fills(m.query("1", o1)) == [(200, 125)]
    assert m.query("1", o1).open_shares == 100
    for account, untouched, shares in [
        ("2", o2, 100),
        ("2", o4, 500),
        ("2", o5, 200),
        ("1", o6, 400),
    ]:
        assert m.query(account, untouched).open_shares == shares
        assert m.query(account, untouched).fills == ()


def test_worked_example_money(traders):
    m = traders
    m.buy("1", "X", 300, 125)
    m.buy("1", "X", 200, 127)
    m.sell("2", "X", 400, 124)
    # order 3 paid exactly 200 x 127; order 1 keeps 100 x 125 of 300 x 125 reserved
    assert m.balance("1") == CASH - 200 * 127 - 200 * 125 - 100 * 125
    assert m.position("1", "X") == 400
    assert m.balance("2") == CASH + 200 * 127 + 200 * 125


def test_incoming_buy_takes_lowest_sell_first(traders):
    m = traders
    dear = m.sell("2", "X", 10, 12)
    cheap = m.sell("2", "X", 10, 11)
    buy = m.buy("1", "X", 10, 20)
    assert fills(m.query("1", buy)) == [(10, 11)]
    assert m.query("2", cheap).open_shares == 0
    assert m.query("2", dear).open_shares == 10


def test_incoming_sell_takes_highest_buy_first(traders):
    m = traders
    low = m.buy("1", "X", 10, 9)
    high = m.buy("1", "X", 10, 10)
    sell = m.sell("2", "X", 10, 1)
    assert fills(m.query("2", sell)) == [(10, 10)]
    assert m.query("1", high).open_shares == 0
    assert m.query("1", low).open_shares == 10


def test_best_price_beats_earlier_arrival(traders):
    m = traders
    older_worse = m.sell("2", "X", 5, 11)
    newer_better = m.sell("2", "X", 5, 10)
    m.buy("1", "X", 5, 11)
    assert m.query("2", newer_better).open_shares == 0
    assert m.query("2", older_worse).open_shares == 5


def test_equal_prices_fill_in_arrival_order(traders):
    m = traders
    first = m.sell("2", "X", 10, 10)
    second = m.sell("2", "X", 10, 10)
    m.buy("1", "X", 15, 10)
    assert m.query("2", first).open_shares == 0
    assert m.query("2", second).open_shares == 5


def test_execution_price_is_resting_buy_limit(traders):
    m = traders
    m.buy("1", "X", 10, 130)
    sell = m.sell("2", "X", 10, 100)
    assert fills(m.query("2", sell)) == [(10, 130)]
    assert m.balance("2") == CASH + 10 * 130


def test_execution_price_is_resting_sell_limit(traders):
    m = traders
    m.sell("2", "X", 10, 100)
    buy = m.buy("1", "X", 10, 130)
    assert fills(m.query("1", buy)) == [(10, 100)]


def test_equal_limits_trade(traders):
    m = traders
    m.sell("2", "X", 10, 10)
    buy = m.buy("1", "X", 10, 10)
    assert fills(m.query("1", buy)) == [(10, 10)]


def test_incompatible_prices_do_not_trade(traders):
    m = traders
    sell = m.sell("2", "X", 10, 11)
    buy = m.buy("1", "X", 10, D("10.99"))
    assert m.query("1", buy).fills == () and m.query("2", sell).fills == ()


def test_partly_filled_order_keeps_its_priority(traders):
    m = traders
    first = m.sell("2", "X", 100, 10)
    m.buy("1", "X", 30, 10)  # first now has 70 open
    second = m.sell("2", "X", 100, 10)
    buy = m.buy("1", "X", 80, 10)
    assert fills(m.query("1", buy)) == [(70, 10), (10, 10)]
    assert m.query("2", first).open_shares == 0
    assert m.query("2", second).open_shares == 90


def test_partly_filled_incoming_order_rests_with_remainder(traders):
    m = traders
    m.sell("2", "X", 30, 10)
    buy = m.buy("1", "X", 100, 10)
    view = m.query("1", buy)
    assert view.open_shares == 70 and fills(view) == [(30, 10)]
    later_sell = m.sell("2", "X", 50, 9)
    assert fills(m.query("2", later_sell)) == [(50, 10)]


def test_one_order_sweeps_several_price_levels(traders):
    m = traders
    for price in (10, 11, 12, 13):
        m.sell("2", "X", 10, price)
    buy = m.buy("1", "X", 35, 12)
    assert fills(m.query("1", buy)) == [(10, 10), (10, 11), (10, 12)]
    assert m.query("1", buy).open_shares == 5


def test_sweep_longer_than_one_book_batch(traders):
    m = traders
    for price in range(1, 41):
        m.sell("2", "X", 1, price)
    buy = m.buy("1", "X", 50, 100)
    assert fills(m.query("1", buy)) == [(1, price) for price in range(1, 41)]
    assert m.query("1", buy).open_shares == 10


def test_both_orders_record_the_same_execution(traders):
    m = traders
    sell = m.sell("2", "X", 10, 10)
    buy = m.buy("1", "X", 10, 10)
    assert m.query("1", buy).fills == m.query("2", sell).fills


def test_account_matches_its_own_resting_order(traders):
    m = traders
    m.grant("1", "X", 10)
    sell = m.sell("1", "X", 10, 10)
    buy = m.buy("1", "X", 10, 10)
    assert fills(m.query("1", buy)) == [(10, 10)]
    assert m.query("1", sell).open_shares == 0
    assert m.balance("1") == CASH
    assert m.position("1", "X") == 10


def test_canceled_order_never_matches_again(traders):
    m = traders
    sell = m.sell("2", "X", 10, 10)
    m.cancel("2", sell)
    buy = m.buy("1", "X", 10, 10)
    assert m.query("1", buy).fills == ()


def test_time_priority_survives_a_cancel_ahead_in_the_queue(traders):
    m = traders
    first = m.sell("2", "X", 10, 10)
    second = m.sell("2", "X", 10, 10)
    third = m.sell("2", "X", 10, 10)
    m.cancel("2", first)
    m.buy("1", "X", 15, 10)
    assert m.query("2", second).open_shares == 0
    assert m.query("2", third).open_shares == 5


def test_fifo_holds_after_a_cancel_in_the_middle_of_the_queue(traders):
    m = traders
    first = m.sell("2", "X", 10, 10)
    second = m.sell("2", "X", 10, 10)
    third = m.sell("2", "X", 10, 10)
    m.buy("1", "X", 5, 10)  # first now has 5 open
    m.cancel("2", second)
    buy = m.buy("1", "X", 10, 10)
    assert fills(m.query("1", buy)) == [(5, 10), (5, 10)]
    assert m.query("2", first).open_shares == 0
    assert m.query("2", third).open_shares == 5


def test_fractional_shares_trade_exactly(traders):
    m = traders
    sell = m.sell("2", "X", D("0.5"), D("100.25"))
    buy = m.buy("1", "X", D("0.75"), D("100.5"))
    assert fills(m.query("1", buy)) == [(D("0.5"), D("100.25"))]
    assert m.query("1", buy).open_shares == D("0.25")
    assert m.query("2", sell).open_shares == 0
    assert m.position("1", "X") == D("0.5")


def test_orders_on_other_symbols_never_match(traders):
    m = traders
    m.grant("2", "Y", 10)
    m.sell("2", "Y", 10, 10)
    buy = m.buy("1", "X", 10, 10)
    assert m.query("1", buy).fills == ()
