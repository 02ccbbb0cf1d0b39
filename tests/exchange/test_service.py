"""SPEC §3: a request's items answered one for one, in order, each on its own."""

from decimal import Decimal as D

import pytest

from app.exchange.commands import (
    CreateAccount,
    CreateSymbol,
    Item,
    MintShares,
    PlaceOrder,
    QueryOrder,
    Request,
    ShowAccount,
    ShowBook,
)
from app.exchange.results import Book, Created, Failed, Opened, Status
from app.exchange.service import answer


def create(*items):
    return Request(tuple(items))


def trade(account, *items):
    return Request(tuple(items), acting_account=account)


def results(replies):
    return [result for _, result in replies]


def test_items_are_answered_in_document_order(market):
    replies = answer(
        market.exchange,
        create(
            Item((("id", "2"),), CreateAccount("2", D(5))),
            Item((("id", "1"),), CreateAccount("1", D(5))),
            Item((("id", "2"),), CreateAccount("2", D(5))),
        ),
    )
    assert [echo for echo, _ in replies] == [(("id", "2"),), (("id", "1"),), (("id", "2"),)]
    assert isinstance(results(replies)[2], Failed)


def test_account_created_earlier_in_a_request_can_receive_shares(market):
    replies = answer(
        market.exchange,
        create(
            Item((("id", "1"),), CreateAccount("1", D(0))),
            Item((), CreateSymbol("X")),
            Item((("sym", "X"), ("id", "1")), MintShares("X", "1", D(7))),
        ),
    )
    assert results(replies) == [Created(), Created()]
    assert market.position("1", "X") == 7


def test_a_failure_never_undoes_an_earlier_success(market):
    replies = answer(
        market.exchange,
        create(
            Item((("id", "1"),), CreateAccount("1", D(10))),
            Item((), CreateSymbol("X")),
            Item((("sym", "X"), ("id", "9")), MintShares("X", "9", D(1))),
        ),
    )
    assert results(replies) == [Created(), Failed("no such account")]
    assert market.balance("1") == 10


def test_item_with_a_problem_fails_with_that_problem(market):
    replies = answer(market.exchange, create(Item((("id", "x"),), problem="malformed id")))
    assert replies == [((("id", "x"),), Failed("malformed id"))]


def test_unknown_acting_account_fails_every_item_and_changes_nothing(market):
    market.account("1", 100)
    market.grant("1", "X", 10)
    order = (("sym", "X"), ("amount", "1"), ("limit", "1"))
    replies = answer(
        market.exchange,
        trade(
            "404",
            Item(order, PlaceOrder("404", "X", D(1), D(1))),
            Item((("id", "1"),), QueryOrder("404", 1)),
            Item((), problem="unknown element <foo>"),
        ),
    )
    assert [echo for echo, _ in replies] == [order, (("id", "1"),), ()]
    assert all(result == Failed("no such account") for result in results(replies))


def test_later_items_see_the_effects_of_earlier_ones(market):
    market.account("1", 100)
    market.grant("1", "X", 10)
    [(_, sell)] = answer(market.exchange, trade("1", Item((), PlaceOrder("1", "X", D(-5), D(2)))))
    replies = answer(
        market.exchange,
        trade(
            "1",
            Item((), PlaceOrder("1", "X", D(5), D(3))),
            Item((), QueryOrder("1", sell.order_id)),
        ),
    )
    opened_buy, status = results(replies)
    assert isinstance(opened_buy, Opened) and opened_buy.order_id > sell.order_id
    assert isinstance(status, Status) and status.order.open_shares == 0


@pytest.mark.parametrize("balance", ["0", "1"])
def test_rejected_order_reply_names_the_reason(market, balance):
    market.account("1", balance)
    market.grant("1", "X", 1)
    [(_, result)] = answer(market.exchange, trade("1", Item((), PlaceOrder("1", "X", D(5), D(1)))))
    assert isinstance(result, Failed) and "insufficient funds" in result.reason


def test_a_read_sees_the_orders_before_it_in_the_same_request(market):
    market.account("1", 100)
    market.grant("1", "X", 10)
    replies = answer(
        market.exchange,
        trade(
            "1",
            Item((), ShowBook("X")),
            Item((), PlaceOrder("1", "X", D(-5), D(2))),
            Item((), ShowBook("X")),
            Item((), ShowAccount("1")),
        ),
    )
    before, _, after, statement = results(replies)
    assert isinstance(before, Book) and before.asks == ()
    assert [(level.price, level.shares) for level in after.asks] == [(2, 5)]
    assert [(h.symbol, h.shares, h.reserved) for h in statement.holdings] == [("X", 5, 5)]


def test_a_refused_read_fails_echoing_its_attributes(market):
    market.account("1", 100)
    echo = (("sym", "NOPE"), ("depth", "3"))
    replies = answer(market.exchange, trade("1", Item(echo, ShowBook("NOPE", 3))))
    assert replies == [(echo, Failed("no such symbol"))]


def test_reads_of_an_unknown_acting_account_fail(market):
    replies = answer(market.exchange, trade("404", Item((), ShowAccount("404"))))
    assert results(replies) == [Failed("no such account")]
