"""SPEC §2: every money and share flow, one test per row of the table."""

from decimal import Decimal as D

import pytest

from app.exchange.errors import Rejected
from tests.exchange.conftest import CASH, SHARES


def test_buy_reserves_amount_times_limit(traders):
    traders.buy("1", "X", 100, 125)
    assert traders.balance("1") == CASH - 100 * 125


def test_buy_beyond_balance_is_rejected_and_changes_nothing(traders):
    with pytest.raises(Rejected, match="insufficient funds"):
        traders.buy("1", "X", 10_000, 101)
    assert traders.balance("1") == CASH


def test_buy_of_exactly_the_balance_is_accepted(traders):
    traders.buy("1", "X", 10_000, 100)
    assert traders.balance("1") == 0


def test_sell_reserves_shares(traders):
    traders.sell("2", "X", 300, 10)
    assert traders.position("2", "X") == SHARES - 300


def test_sell_beyond_position_is_rejected_and_changes_nothing(traders):
    with pytest.raises(Rejected, match="insufficient shares"):
        traders.sell("2", "X", SHARES + 1, 10)
    assert traders.position("2", "X") == SHARES


def test_sell_without_any_position_is_rejected(traders):
    with pytest.raises(Rejected, match="insufficient shares"):
        traders.sell("1", "X", 1, 10)


def test_execution_below_buy_limit_refunds_the_difference(traders):
    traders.sell("2", "X", 100, 120)
    traders.buy("1", "X", 100, 125)
    assert traders.balance("1") == CASH - 100 * 120
    assert traders.position("1", "X") == 100


def test_execution_pays_seller_shares_times_price(traders):
    traders.buy("1", "X", 100, 125)
    traders.sell("2", "X", 100, 120)
    assert traders.balance("2") == CASH + 100 * 125
    assert traders.balance("1") == CASH - 100 * 125


def test_cancel_of_buy_refunds_open_shares_times_limit(traders):
    order = traders.buy("1", "X", 100, 125)
    traders.sell("2", "X", 40, 125)
    traders.cancel("1", order)
    assert traders.balance("1") == CASH - 40 * 125


def test_cancel_of_buy_after_cheaper_fill_keeps_the_refund(traders):
    order = traders.buy("1", "X", 100, 125)
    traders.sell("2", "X", 40, 100)  # fills at the resting buy's limit, 125
    traders.cancel("1", order)
    assert traders.balance("1") == CASH - 40 * 125


def test_cancel_of_sell_returns_open_shares(traders):
    order = traders.sell("2", "X", 100, 10)
    traders.buy("1", "X", 30, 10)
    traders.cancel("2", order)
    assert traders.position("2", "X") == SHARES - 30


def test_fractional_amounts_are_never_rounded(traders):
    traders.account("3", D("0.00000001"))
    traders.buy("3", "X", D("0.00000001"), 1)
    assert traders.balance("3") == 0
    traders.sell("2", "X", D("0.00000001"), D("0.99999999"))
    assert traders.balance("3") == 0  # executed at its own limit: no refund
    assert traders.position("3", "X") == D("0.00000001")


def test_large_products_keep_every_digit(traders):
    big = "999999999999.99999999"
    traders.account("4", "999999999999999999999999.9999999999999999")
    traders.grant("2", "BIG", big)
    traders.sell("2", "BIG", big, big)
    traders.buy("4", "BIG", big, big)
    assert traders.position("4", "BIG") == D(big)
    # CASH + big x big, all 41 significant digits of it
    assert traders.balance("2") == D("1000000000000000000980000.0000000000000001")
