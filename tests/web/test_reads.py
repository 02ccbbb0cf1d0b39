"""SPEC §7 over HTTP: the four reads as `GET` resources, XML or JSON, 404 and 400 with a body."""

import json
import logging

import pytest
from lxml import etree
from prometheus_client import REGISTRY

from tests.exchange.market import WORKED_EXAMPLE
from tests.integrity.books import snapshot
from tests.web.test_http import children, open_accounts, post
from tests.web.test_observe import fields

JSON = {"Accept": "application/json"}


def place(client, account: str, *orders: tuple[int, int], symbol: str = "X") -> list[str]:
    """Orders of one account, in one request; their ids."""
    elements = "".join(
        f'<order sym="{symbol}" amount="{amount}" limit="{limit}"/>' for amount, limit in orders
    )
    reply = post(client, f'<transactions id="{account}">{elements}</transactions>')
    return [attributes["id"] for _, attributes, _ in children(reply)]


@pytest.fixture
def worked_example(client):
    """Orders 1 to 6 of the worked example, placed; their ids."""
    open_accounts(client)
    return [place(client, account, (amount, limit))[0] for account, amount, limit in WORKED_EXAMPLE]


def root(response) -> etree._Element:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/xml")
    return etree.fromstring(response.content)


def rows(element: etree._Element, tag: str, *names: str) -> list[tuple]:
    return [tuple(child.get(name) for name in names) for child in element.iter(tag)]


def test_book_is_the_worked_examples_book(client, worked_example):
    book = root(client.simulate_get("/symbols/X/book"))
    assert (book.tag, book.get("sym")) == ("book", "X")
    assert [child.tag for child in book] == ["bid", "bid", "ask", "ask", "ask"]
    assert rows(book, "bid", "price", "shares", "orders") == [
        ("127", "200", "1"),
        ("125", "700", "2"),
    ]
    assert rows(book, "ask", "price", "shares", "orders") == [
        ("128", "500", "1"),
        ("130", "100", "1"),
        ("140", "200", "1"),
    ]


def test_book_depth_limits_the_levels_a_side(client, worked_example):
    book = root(client.simulate_get("/symbols/X/book", params={"depth": "1"}))
    assert rows(book, "bid", "price") == [("127",)] and rows(book, "ask", "price") == [("128",)]


def test_book_as_json_has_the_same_fields_with_decimals_as_strings(client, worked_example):
    response = client.simulate_get("/symbols/X/book", headers=JSON, params={"depth": "2"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert json.loads(response.content) == {
        "sym": "X",
        "bids": [
            {"price": "127", "shares": "200", "orders": 1},
            {"price": "125", "shares": "700", "orders": 2},
        ],
        "asks": [
            {"price": "128", "shares": "500", "orders": 1},
            {"price": "130", "shares": "100", "orders": 1},
        ],
    }


def test_trades_are_the_worked_examples_tape_newest_first(client, worked_example):
    place(client, "2", (-400, 124))
    tape = root(client.simulate_get("/symbols/X/trades"))
    assert (tape.tag, tape.get("sym")) == ("trades", "X")
    assert rows(tape, "trade", "shares", "price") == [("200", "125"), ("200", "127")]
    assert all(trade.get("time").isdigit() for trade in tape)
    assert all(set(trade.attrib) == {"shares", "price", "time"} for trade in tape)
    newest = root(client.simulate_get("/symbols/X/trades", params={"limit": "1"}))
    assert rows(newest, "trade", "price") == [("125",)]


def test_account_is_the_statement(client, worked_example):
    place(client, "2", (-400, 124))
    statement = root(client.simulate_get("/accounts/2"))
    assert dict(statement.attrib) == {"id": "2", "balance": "1050400", "reserved": "0"}
    assert rows(statement, "position", "sym", "shares", "reserved") == [("X", "8800", "800")]
    as_json = json.loads(client.simulate_get("/accounts/1", headers=JSON).content)
    assert as_json == {
        "id": "1",
        "balance": str(1_000_000 - 300 * 125 - 200 * 127 - 400 * 125),
        "reserved": str(100 * 125 + 400 * 125),
        "positions": [{"sym": "X", "shares": "400", "reserved": "0"}],
    }


def test_orders_are_the_accounts_open_orders_oldest_first(client, worked_example):
    listed = root(client.simulate_get("/accounts/2/orders"))
    assert listed.tag == "orders" and listed.get("more") is None
    assert rows(listed, "order", "id", "sym", "amount", "limit", "open") == [
        (worked_example[1], "X", "-100", "130", "100"),
        (worked_example[3], "X", "-500", "128", "500"),
        (worked_example[4], "X", "-200", "140", "200"),
    ]
    after = root(
        client.simulate_get("/accounts/2/orders", params={"sym": "X", "after": worked_example[3]})
    )
    assert rows(after, "order", "id") == [(worked_example[4],)]


def test_orders_never_list_another_accounts_orders(client, worked_example):
    listed = json.loads(client.simulate_get("/accounts/1/orders", headers=JSON).content)
    assert [order["id"] for order in listed["orders"]] == [
        worked_example[0],
        worked_example[2],
        worked_example[5],
    ]
    assert listed["more"] is False


@pytest.mark.parametrize(
    "path, reason",
    [
        ("/symbols/NOPE/book", "no such symbol"),
        ("/symbols/NOPE/trades", "no such symbol"),
        ("/accounts/404", "no such account"),
        ("/accounts/404/orders", "no such account"),
        ("/accounts/1/orders?sym=NOPE", "no such symbol"),
    ],
)
def test_unknown_symbol_or_account_is_404_with_an_error_body(client, path, reason):
    open_accounts(client)
    path, _, query = path.partition("?")
    xml = client.simulate_get(path, query_string=query)
    assert xml.status_code == 404
    assert children(xml) == [("error", {}, reason)]
    as_json = client.simulate_get(path, query_string=query, headers=JSON)
    assert as_json.status_code == 404
    assert as_json.headers["content-type"].startswith("application/json")
    assert json.loads(as_json.content) == {"error": reason}


HOSTILE = {
    "depth-zero": ("/symbols/X/book", "depth=0", "malformed depth '0'"),
    "depth-past-1000": ("/symbols/X/book", "depth=1001", "malformed depth '1001'"),
    "depth-fraction": ("/symbols/X/book", "depth=2.5", "malformed depth '2.5'"),
    "depth-exponent": ("/symbols/X/book", "depth=1e2", "malformed depth '1e2'"),
    "depth-empty": ("/symbols/X/book", "depth=", "depth is empty"),
    "depth-twice": ("/symbols/X/book", "depth=1&depth=2", "Invalid parameter"),
    "depth-huge": ("/symbols/X/book", "depth=" + "9" * 10_000, "malformed depth '9999"),
    "limit-nan": ("/symbols/X/trades", "limit=NaN", "malformed limit 'NaN'"),
    "limit-arabic-digits": ("/symbols/X/trades", "limit=%D9%A1", "malformed limit '١'"),
    "limit-nul": ("/symbols/X/trades", "limit=1%00", "malformed limit '1\\x00'"),
    "after-negative": ("/accounts/1/orders", "after=-1", "malformed after '-1'"),
    "after-past-bigint": ("/accounts/1/orders", "after=" + "9" * 20, "malformed after"),
    "sym-query-malformed": ("/accounts/1/orders", "sym=S%26P", "malformed symbol 'S&P'"),
    "sym-path-malformed": ("/symbols/S%20P/book", "", "malformed symbol 'S P'"),
    "sym-path-too-long": ("/symbols/" + "A" * 33 + "/trades", "", "malformed symbol"),
    "account-path-malformed": ("/accounts/12a", "", "malformed account id '12a'"),
    "account-path-signed": ("/accounts/-1/orders", "", "malformed account id '-1'"),
    "account-path-nul": ("/accounts/%00", "", "malformed account id '\\x00'"),
    "sym-path-invalid-utf8": ("/symbols/%FF/book", "", "malformed symbol '\ufffd'"),
    "sym-path-empty": ("/symbols//trades", "", "symbol is empty"),
    "sym-query-zero-width-space": ("/accounts/1/orders", "sym=%E2%80%8B", "malformed symbol"),
}


@pytest.mark.parametrize("negotiated", ["xml", "json"])
@pytest.mark.parametrize("path, query, message", HOSTILE.values(), ids=HOSTILE.keys())
def test_malformed_parameter_is_400_with_an_error_body(client, path, query, message, negotiated):
    open_accounts(client)
    headers = JSON if negotiated == "json" else {}
    response = client.simulate_get(path, query_string=query, headers=headers)
    assert response.status_code == 400
    if negotiated == "json":
        assert json.loads(response.content)["error"].startswith(message)
    else:
        [(tag, attributes, text)] = children(response)
        assert (tag, attributes) == ("error", {}) and text.startswith(message)


def test_reads_change_nothing(client, worked_example, engine):
    before = snapshot(engine)
    for path in ("/symbols/X/book", "/symbols/X/trades", "/accounts/1", "/accounts/1/orders"):
        assert client.simulate_get(path).status_code == 200
    assert snapshot(engine) == before


def test_post_answers_reads_in_document_order_seeing_earlier_orders(client):
    open_accounts(client)
    reply = post(
        client,
        '<transactions id="2"><book sym="X"/><order sym="X" amount="-5" limit="9.50"/>'
        '<book sym="X" depth="1"/><orders sym="X"/><trades sym="NOPE" limit="3"/></transactions>',
    )
    document = etree.fromstring(reply.content)
    assert [child.tag for child in document] == ["book", "opened", "book", "orders", "error"]
    assert len(document[0]) == 0
    assert rows(document[2], "ask", "price", "shares", "orders") == [("9.5", "5", "1")]
    assert rows(document[3], "order", "amount", "limit", "open") == [("-5", "9.5", "5")]
    assert (dict(document[4].attrib), document[4].text) == (
        {"sym": "NOPE", "limit": "3"},
        "no such symbol",
    )


def test_reads_are_logged_one_line_each(client, caplog):
    open_accounts(client)
    caplog.set_level(logging.DEBUG, logger="app.web.requests")
    caplog.clear()
    client.simulate_get("/accounts/1")
    client.simulate_get("/symbols/NOPE/book")
    ok, missing = [r for r in caplog.records if r.name == "app.web.requests"]
    assert (ok.levelno, missing.levelno) == (logging.INFO, logging.WARNING)
    line = fields(ok)
    assert (line["kind"], line["account"], line["items"], line["outcome"]) == (
        "account",
        "1",
        "1",
        "ok",
    )
    assert fields(missing)["outcome"] == "not_found"
    assert fields(missing)["error"] == "no such symbol"


def test_reads_are_counted_in_the_metrics(client):
    open_accounts(client)

    def counted():
        requests = ("exchange_requests_total", {"kind": "book", "outcome": "ok"})
        results = ("exchange_results_total", {"result": "book"})
        return [REGISTRY.get_sample_value(*sample) or 0 for sample in (requests, results)]

    before = counted()
    client.simulate_get("/symbols/X/book")
    assert counted() == [count + 1 for count in before]


@pytest.mark.parametrize(
    ("accept", "media"),
    [
        ("application/json, */*", "application/json"),  # a common client default
        ("application/JSON", "application/json"),  # media types are case-insensitive
        ("application/xml;q=0.2, application/json;q=0.8", "application/json"),
        ("application/json;q=0.5, application/xml", "application/xml"),
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "application/xml"),
        ("*/*", "application/xml"),
        ("application/json;q=0", "application/xml"),
        ("not a media range", "application/xml"),
    ],
)
def test_accept_is_negotiated_by_quality_then_by_the_type_named(
    client, worked_example, accept, media
):
    response = client.simulate_get("/symbols/X/book", headers={"Accept": accept})
    assert response.headers["content-type"].startswith(media)
