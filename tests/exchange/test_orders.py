"""SPEC §3.2: query and cancel, and the walls between accounts."""

import pytest

from app.exchange.errors import Rejected
from tests.exchange.conftest import CASH
from tests.exchange.market import fills


def test_order_ids_are_unique_and_increasing(traders):
    ids = [traders.buy("1", "X", 1, 1) for _ in range(5)]
    assert ids == sorted(set(ids))


def test_a_fresh_exchange_numbers_its_accepted_orders_1_2_3_whatever_is_refused_between(traders):
    """Clients of the legacy protocol count on it: a refused order takes no id."""
    placed = [traders.buy("1", "X", 1, 1)]
    for refused in (
        lambda: traders.buy("1", "X", 1, CASH + 1),
        lambda: traders.sell("1", "X", 1, 1),
    ):
        with pytest.raises(Rejected):
            refused()
        placed.append(traders.sell("2", "X", 1, 5))
    assert placed == [1, 2, 3]


def test_query_of_a_new_order_shows_it_open(traders):
    order = traders.buy("1", "X", 100, 10)
    view = traders.query("1", order)
    assert view.open_shares == 100 and view.canceled is None and view.fills == ()


def test_query_shows_fills_oldest_first(traders):
    order = traders.buy("1", "X", 100, 20)
    traders.sell("2", "X", 10, 15)
    traders.sell("2", "X", 20, 10)
    assert fills(traders.query("1", order)) == [(10, 20), (20, 20)]


def test_cancel_reports_canceled_shares_and_keeps_fills(traders):
    order = traders.buy("1", "X", 100, 20)
    traders.sell("2", "X", 30, 20)
    view = traders.cancel("1", order)
    assert view.open_shares == 0
    assert view.canceled.shares == 70
    assert fills(view) == [(30, 20)]
    assert traders.query("1", order) == view


def test_cancel_time_is_recorded_in_epoch_seconds(traders):
    import time

    before = int(time.time())
    order = traders.buy("1", "X", 1, 1)
    canceled = traders.cancel("1", order).canceled
    assert before - 5 <= canceled.time <= int(time.time()) + 5


def test_cancel_of_a_fully_executed_order_is_rejected(traders):
    order = traders.buy("1", "X", 10, 10)
    traders.sell("2", "X", 10, 10)
    with pytest.raises(Rejected, match="no open shares"):
        traders.cancel("1", order)


def test_cancel_twice_is_rejected_and_refunds_once(traders):
    order = traders.buy("1", "X", 10, 10)
    traders.cancel("1", order)
    with pytest.raises(Rejected, match="no open shares"):
        traders.cancel("1", order)
    assert traders.balance("1") == CASH


def test_query_of_unknown_order_is_rejected(traders):
    with pytest.raises(Rejected, match="no such order"):
        traders.query("1", 999_999)


def test_other_accounts_order_is_invisible_to_query(traders):
    order = traders.buy("1", "X", 10, 10)
    with pytest.raises(Rejected) as foreign:
        traders.query("2", order)
    with pytest.raises(Rejected) as missing:
        traders.query("2", 999_999)
    assert str(foreign.value) == str(missing.value)


def test_other_accounts_order_cannot_be_canceled(traders):
    order = traders.buy("1", "X", 10, 10)
    with pytest.raises(Rejected) as foreign:
        traders.cancel("2", order)
    with pytest.raises(Rejected) as missing:
        traders.cancel("2", 999_999)
    assert str(foreign.value) == str(missing.value)
    assert traders.query("1", order).open_shares == 10
