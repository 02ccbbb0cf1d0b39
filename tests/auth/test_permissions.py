"""SPEC §8's permissions: what a key may run of a request, decided before anything runs."""

from decimal import Decimal

import pytest

from app.auth.permissions import Forbidden, NotPermitted, authorize, authorize_account
from app.auth.store import Key
from app.exchange.commands import (
    CancelOrder,
    CreateAccount,
    Item,
    PlaceOrder,
    QueryOrder,
    Request,
    ShowAccount,
    ShowBook,
)
from app.exchange.errors import Reason, Rejected

ADMIN = Key("admin-key", None, frozenset({"admin"}))
TRADER = Key("trader-key", "1", frozenset({"trade"}))
READER = Key("reader-key", "1", frozenset({"read"}))
ORDER = Item((("sym", "X"),), PlaceOrder("1", "X", Decimal(1), Decimal(1)))
CANCEL = Item((("id", "7"),), CancelOrder("1", 7))
QUERY = Item((("id", "7"),), QueryOrder("1", 7))
BOOK = Item((("sym", "X"),), ShowBook("X"))
STATEMENT = Item((), ShowAccount("1"))
MALFORMED = Item((("sym", "X"),), problem="malformed amount")
CREATE = Request((Item((("id", "9"),), CreateAccount("9", Decimal(1))),))


def transactions(*items: Item, account: str = "1") -> Request:
    return Request(items, account, "transactions")


def problems(request: Request) -> list[str | None]:
    return [item.problem for item in request.items]


def test_without_authentication_everything_runs():
    request = transactions(ORDER, QUERY)
    assert authorize(None, request) is request
    assert authorize(None, CREATE) is CREATE


def test_create_needs_an_admin_key():
    assert authorize(ADMIN, CREATE) is CREATE
    for key in (TRADER, READER):
        with pytest.raises(Forbidden):
            authorize(key, CREATE)


def test_orders_and_cancels_need_trade():
    assert problems(authorize(READER, transactions(ORDER, CANCEL))) == ["not permitted"] * 2
    assert problems(authorize(TRADER, transactions(ORDER, CANCEL))) == [None, None]


def test_queries_and_reads_need_read():
    assert (
        problems(authorize(TRADER, transactions(QUERY, BOOK, STATEMENT))) == ["not permitted"] * 3
    )
    assert problems(authorize(READER, transactions(QUERY, BOOK, STATEMENT))) == [None] * 3


def test_a_child_refused_by_the_parser_keeps_its_own_error():
    assert problems(authorize(READER, transactions(MALFORMED, ORDER))) == [
        "malformed amount",
        "not permitted",
    ]


def test_another_accounts_key_is_answered_as_for_an_account_that_does_not_exist():
    refused = authorize(TRADER, transactions(ORDER, MALFORMED, account="2"))
    assert problems(refused) == [Reason.NO_SUCH_ACCOUNT.value] * 2
    assert [item.echo for item in refused.items] == [ORDER.echo, MALFORMED.echo]
    assert refused.acting_account is None
    assert problems(authorize(ADMIN, transactions(QUERY))) == [Reason.NO_SUCH_ACCOUNT.value]


def test_an_accounts_reads_need_its_own_key_with_read():
    authorize_account(READER, "1")
    authorize_account(None, "1")
    with pytest.raises(Rejected, match="no such account"):
        authorize_account(READER, "2")
    with pytest.raises(NotPermitted):
        authorize_account(TRADER, "1")
