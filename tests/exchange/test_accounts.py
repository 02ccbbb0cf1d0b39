"""SPEC §3.1: accounts, symbols and share grants."""

from decimal import Decimal as D

import pytest

from app.exchange.commands import CreateSymbol, MintShares
from app.exchange.errors import Rejected


def test_new_account_holds_its_starting_balance(market):
    market.account("1", "123.45")
    assert market.balance("1") == D("123.45")


def test_account_with_zero_balance_is_allowed(market):
    market.account("1", 0)
    assert market.balance("1") == 0


def test_creating_an_existing_account_is_rejected_and_keeps_the_balance(market):
    market.account("1", 100)
    with pytest.raises(Rejected, match="already exists"):
        market.account("1", 500)
    assert market.balance("1") == 100


def test_account_ids_are_exact_text(market):
    market.account("007", 1)
    market.account("7", 2)
    assert market.balance("007") == 1 and market.balance("7") == 2


def test_grant_adds_to_the_position(market):
    market.account("1")
    market.grant("1", "X", 10)
    market.grant("1", "X", D("2.5"))
    assert market.position("1", "X") == D("12.5")


def test_granting_an_existing_symbol_again_mints_more(market):
    market.account("1")
    market.account("2")
    market.grant("1", "X", 10)
    market.grant("2", "X", 5)
    assert market.position("2", "X") == 5


def test_grant_to_unknown_account_is_rejected(market):
    with pytest.raises(Rejected, match="no such account"):
        market.grant("404", "X", 10)


def test_symbol_exists_even_when_its_grants_failed(market):
    with pytest.raises(Rejected):
        market.grant("404", "X", 10)
    market.account("1", 100)
    market.buy("1", "X", 1, 1)  # the symbol is known: the order rests


def test_symbols_are_case_sensitive(market):
    market.account("1", 100)
    market.grant("1", "abc", 1)
    with pytest.raises(Rejected, match="no such symbol"):
        market.buy("1", "ABC", 1, 1)


def test_mint_on_a_missing_symbol_is_rejected(market):
    market.account("1")
    with pytest.raises(Rejected, match="no such symbol"):
        market.exchange.mint_shares(MintShares("NOPE", "1", D(1)))


def test_creating_a_symbol_twice_is_harmless(market):
    market.exchange.create_symbol(CreateSymbol("X"))
    market.exchange.create_symbol(CreateSymbol("X"))


def test_order_on_unknown_symbol_is_rejected(market):
    market.account("1", 100)
    with pytest.raises(Rejected, match="no such symbol"):
        market.buy("1", "NOPE", 1, 1)


def test_account_existence_is_remembered_once_seen(market):
    assert not market.exchange.account_exists("1")
    market.account("1")
    assert market.exchange.account_exists("1")


@pytest.mark.parametrize("amount", ["1", "-1"])
def test_order_from_an_unknown_account_is_rejected_and_changes_nothing(market, amount):
    market.account("2")
    market.grant("2", "X", 5)
    with pytest.raises(Rejected, match="no such account"):
        market.order("404", "X", amount, 1)
    assert market.position("2", "X") == 5
