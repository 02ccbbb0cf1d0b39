"""SPEC §5.1 through the Falcon app: POST / in, `<results>` out, XML errors."""

import pytest
from lxml import etree

from tests.conftest import SMALL_BODY_LIMIT


def post(client, body: str | bytes, **headers):
    data = body.encode() if isinstance(body, str) else body
    return client.simulate_post(
        "/", body=data, headers={"Content-Type": "application/xml", **headers}
    )


def children(response):
    """The `<results>` children as (tag, attributes, text) triples."""
    root = etree.fromstring(response.content)
    assert root.tag == "results"
    return [(child.tag, dict(child.attrib), child.text) for child in root]


def open_accounts(client):
    post(
        client,
        '<create><account id="1" balance="1000000"/><account id="2" balance="1000000"/>'
        '<symbol sym="X"><account id="2">10000</account></symbol></create>',
    )


def test_create_replies_created_per_child_in_order(client):
    response = post(
        client,
        '<create><account id="1" balance="5"/><symbol sym="X"><account id="1">10</account>'
        '<account id="9">10</account></symbol><account id="1" balance="5"/></create>',
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/xml")
    replies = children(response)
    assert [(tag, attrs) for tag, attrs, _ in replies] == [
        ("created", {"id": "1"}),
        ("created", {"sym": "X", "id": "1"}),
        ("error", {"sym": "X", "id": "9"}),
        ("error", {"id": "1"}),
    ]
    assert replies[3][2] == "account already exists"


def test_order_reply_echoes_the_request_text_exactly(client):
    open_accounts(client)
    response = post(
        client, '<transactions id="1"><order sym="X" amount="+10" limit="12.50"/></transactions>'
    )
    [(tag, attrs, _)] = children(response)
    assert tag == "opened"
    assert (attrs["sym"], attrs["amount"], attrs["limit"]) == ("X", "+10", "12.50")
    assert attrs["id"].isdigit()


def test_worked_example_over_http(client):
    open_accounts(client)
    orders = [
        (1, 300, 125),
        (2, -100, 130),
        (1, 200, 127),
        (2, -500, 128),
        (2, -200, 140),
        (1, 400, 125),
        (2, -400, 124),
    ]
    ids = []
    for account, amount, limit in orders:
        response = post(
            client,
            f'<transactions id="{account}">'
            f'<order sym="X" amount="{amount}" limit="{limit}"/></transactions>',
        )
        ids.append(children(response)[0][1]["id"])
    response = post(client, f'<transactions id="2"><query id="{ids[6]}"/></transactions>')
    [(tag, attrs, _)] = children(response)
    assert (tag, attrs) == ("status", {"id": ids[6]})
    status = etree.fromstring(response.content)[0]
    assert [(e.tag, e.get("shares"), e.get("price")) for e in status] == [
        ("executed", "200", "127"),
        ("executed", "200", "125"),
    ]
    response = post(client, f'<transactions id="1"><query id="{ids[0]}"/></transactions>')
    status = etree.fromstring(response.content)[0]
    assert [(e.tag, e.get("shares"), e.get("price")) for e in status] == [
        ("open", "100", None),
        ("executed", "200", "125"),
    ]
    assert status[1].get("time").isdigit()


def test_cancel_reply_shows_canceled_then_executed(client):
    open_accounts(client)
    opened = children(
        post(client, '<transactions id="1"><order sym="X" amount="10" limit="5"/></transactions>')
    )[0][1]["id"]
    post(client, '<transactions id="2"><order sym="X" amount="-4" limit="5"/></transactions>')
    response = post(client, f'<transactions id="1"><cancel id="{opened}"/></transactions>')
    canceled = etree.fromstring(response.content)[0]
    assert (canceled.tag, canceled.get("id")) == ("canceled", opened)
    assert [(e.tag, e.get("shares")) for e in canceled] == [("canceled", "6"), ("executed", "4")]


def test_unknown_acting_account_gets_an_error_per_child(client):
    response = post(
        client,
        '<transactions id="404"><order sym="X" amount="1" limit="1"/><query id="1"/>'
        '<cancel id="2"/></transactions>',
    )
    assert response.status_code == 200
    assert [(tag, attrs) for tag, attrs, _ in children(response)] == [
        ("error", {"sym": "X", "amount": "1", "limit": "1"}),
        ("error", {"id": "1"}),
        ("error", {"id": "2"}),
    ]


def test_transactions_without_children_gets_one_error(client):
    open_accounts(client)
    response = post(client, '<transactions id="1"></transactions>')
    assert response.status_code == 200
    [(tag, attrs, text)] = children(response)
    assert tag == "error" and attrs == {} and text


def test_unknown_child_is_answered_in_its_place(client):
    open_accounts(client)
    response = post(client, '<transactions id="1"><query id="1"/><bogus/></transactions>')
    assert [tag for tag, _, _ in children(response)] == ["error", "error"]
    assert children(response)[1][1] == {}


def test_query_of_another_accounts_order_looks_like_a_missing_order(client):
    open_accounts(client)
    opened = children(
        post(client, '<transactions id="1"><order sym="X" amount="1" limit="1"/></transactions>')
    )[0][1]["id"]
    foreign = children(post(client, f'<transactions id="2"><query id="{opened}"/></transactions>'))
    missing = children(post(client, '<transactions id="2"><query id="999999"/></transactions>'))
    assert foreign[0][0] == missing[0][0] == "error"
    assert foreign[0][2] == missing[0][2]


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not xml",
        b"<create>",
        b"<orders/>",
        b'<?xml version="1.0"?><!DOCTYPE create [<!ENTITY a "x">]><create/>',
        b"\xff\xfe<create/>",
    ],
    ids=["empty", "text", "unclosed", "wrong-root", "dtd", "invalid-utf8"],
)
def test_malformed_document_gets_400_and_one_error(client, body):
    response = post(client, body)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/xml")
    [(tag, attrs, text)] = children(response)
    assert tag == "error" and attrs == {} and text


def test_malformed_document_changes_nothing(client, market):
    post(client, b'<create><account id="1" balance="5"/>')
    assert not market.exchange.account_exists("1")


def test_body_over_the_limit_gets_413(client):
    body = b"<create>" + b" " * SMALL_BODY_LIMIT + b"</create>"
    response = post(client, body)
    assert response.status_code == 413
    assert children(response)[0][0] == "error"


def test_body_at_the_limit_is_accepted(client):
    head, tail = b'<create><account id="1" balance="1"/>', b"</create>"
    body = head + b" " * (SMALL_BODY_LIMIT - len(head) - len(tail)) + tail
    assert post(client, body).status_code == 200


def test_missing_content_type_is_accepted(client):
    response = client.simulate_post("/", body=b'<create><account id="1" balance="1"/></create>')
    assert response.status_code == 200


def test_unknown_path_gets_xml_404(client):
    response = client.simulate_post("/nowhere", body=b"<create/>")
    assert response.status_code == 404
    assert children(response)[0][0] == "error"


def test_get_on_requests_endpoint_gets_xml_405(client):
    response = client.simulate_get("/")
    assert response.status_code == 405
    assert children(response)[0][0] == "error"
