"""SPEC §9 over HTTP, through the Falcon app on real PostgreSQL: a key makes a request run once."""

from decimal import Decimal

import pytest
from sqlalchemy import func, select

from app.exchange.commands import PlaceOrder
from app.exchange.transactions import Exchange
from app.idempotency.claims import Child, ClaimLost
from app.idempotency.keys import fingerprint
from app.storage.schema import orders
from tests.web.test_http import children, open_accounts, post

BUY = b'<transactions id="1"><order sym="X" amount="5" limit="10"/></transactions>'
SELL_AND_BUY = (
    b'<transactions id="2"><order sym="X" amount="-1" limit="90"/>'
    b'<order sym="X" amount="2" limit="10"/><query id="1"/></transactions>'
)


def keyed(client, body: bytes, key: str = "k-1"):
    return post(client, body, **{"Idempotency-Key": key})


def order_count(engine) -> int:
    with engine.connect() as connection:
        return connection.scalar(select(func.count()).select_from(orders))


def test_a_repeat_gets_the_first_reply_byte_for_byte_and_runs_nothing(client, engine):
    open_accounts(client)
    first = keyed(client, BUY)
    repeat = keyed(client, BUY)
    assert first.status_code == repeat.status_code == 200
    assert repeat.content == first.content
    assert repeat.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert order_count(engine) == 1


def test_the_key_in_a_prefix_of_the_body_is_the_same_key(client, engine):
    open_accounts(client)
    first = keyed(client, BUY)
    repeat = post(client, b'<?exch-idempotency key="k-1"?>' + BUY)
    assert repeat.content == first.content and repeat.headers["idempotent-replayed"] == "true"
    assert order_count(engine) == 1


def test_requests_without_a_key_run_every_time(client, engine):
    open_accounts(client)
    post(client, BUY)
    post(client, BUY)
    assert order_count(engine) == 2


def test_another_document_under_the_same_key_is_refused_with_422(client, engine):
    open_accounts(client)
    keyed(client, BUY)
    other = keyed(client, BUY.replace(b'amount="5"', b'amount="6"'))
    assert other.status_code == 422
    assert children(other) == [("error", {}, "idempotency key reused with a different request")]
    assert order_count(engine) == 1


def test_keys_are_scoped_to_the_acting_account(client, engine):
    open_accounts(client)
    keyed(client, BUY)
    for_two = keyed(client, BUY.replace(b'id="1"', b'id="2"'))
    assert for_two.status_code == 200 and "idempotent-replayed" not in for_two.headers
    assert order_count(engine) == 2


def test_a_repeat_while_the_first_runs_is_refused_with_409(client, engine, exchange_engine):
    open_accounts(client)
    running = Exchange(exchange_engine)
    assert running.claim_request("1", "k-1", fingerprint(BUY), attempt=7, lease_seconds=60) == 1
    repeat = keyed(client, BUY)
    assert repeat.status_code == 409
    assert children(repeat) == [("error", {}, "request in progress")]
    assert order_count(engine) == 0


def test_a_claim_whose_lease_ran_out_is_taken_over(client, engine, exchange_engine):
    open_accounts(client)
    Exchange(exchange_engine).claim_request("1", "k-1", fingerprint(BUY), 7, lease_seconds=0)
    repeat = keyed(client, BUY)
    assert repeat.status_code == 200 and [tag for tag, _, _ in children(repeat)] == ["opened"]
    assert order_count(engine) == 1


def test_a_repeat_of_an_attempt_cut_off_part_way_runs_only_what_had_not_committed(
    client, engine, exchange_engine
):
    """The first attempt committed its first child, then died (here: its lease ran
    out with the second child never run): the repeat answers the first child from its
    record, runs the second, and the query, which changes nothing, is answered anew."""
    open_accounts(client)
    complete = keyed(client, SELL_AND_BUY, key="whole")
    expected = children(complete)
    cut_off = Exchange(exchange_engine)
    document_print = fingerprint(SELL_AND_BUY)
    cut_off.claim_request("2", "cut", document_print, attempt=7, lease_seconds=0)
    first_child = cut_off.place_order(
        PlaceOrder("2", "X", Decimal(-1), Decimal(90)), Child("2", "cut", 7, 0)
    )
    repeat = keyed(client, SELL_AND_BUY, key="cut")
    replies = children(repeat)
    assert replies[0] == ("opened", {**expected[0][1], "id": str(first_child.order_id)}, None)
    assert [tag for tag, _, _ in replies] == ["opened", "opened", "status"]
    assert order_count(engine) == 4  # 2 for the complete request, 1 + 1 for the cut one


def test_a_child_recorded_by_one_attempt_cannot_be_committed_by_another(
    engine, exchange_engine, client
):
    open_accounts(client)
    exchange = Exchange(exchange_engine)
    exchange.claim_request("1", "k", fingerprint(BUY), attempt=7, lease_seconds=0)
    order = PlaceOrder("1", "X", Decimal(5), Decimal(10))
    exchange.place_order(order, Child("1", "k", 7, 0))
    exchange.claim_request("1", "k", fingerprint(BUY), attempt=8, lease_seconds=60)
    with pytest.raises(ClaimLost):
        exchange.place_order(order, Child("1", "k", 8, 0))
    with pytest.raises(ClaimLost):
        exchange.place_order(order, Child("1", "k", 7, 1))
    assert order_count(engine) == 1
