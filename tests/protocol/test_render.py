"""Results to the `<results>` reply document, per SPEC §3."""

import json
from decimal import Decimal

from lxml import etree

from app.exchange.results import (
    AccountStatement,
    Book,
    Canceled,
    Cancellation,
    Created,
    Failed,
    Fill,
    Holding,
    Opened,
    OpenOrder,
    OpenOrders,
    OrderView,
    PriceLevel,
    Quote,
    Quotes,
    Status,
    Trade,
    Trades,
)
from app.protocol import render_error, render_json, render_report, render_results

DECLARATION = b"<?xml version='1.0' encoding='UTF-8'?>\n"


def body(document: bytes) -> str:
    assert document.startswith(DECLARATION) and document.endswith(b"\n")
    return document[len(DECLARATION) : -1].decode()


def test_no_replies_render_an_empty_results_element():
    assert render_results([]) == DECLARATION + b"<results/>\n"


def test_created_repeats_the_echo():
    assert body(render_results([((("sym", "SPY"), ("id", "7")), Created())])) == (
        '<results><created sym="SPY" id="7"/></results>'
    )


def test_opened_repeats_the_echo_then_the_order_id():
    echo = (("sym", "SPY"), ("amount", " +100"), ("limit", "1.50"))
    assert body(render_results([(echo, Opened(order_id=12))])) == (
        '<results><opened sym="SPY" amount=" +100" limit="1.50" id="12"/></results>'
    )


def test_status_lists_open_shares_then_executions_in_order():
    order = OrderView(
        1,
        Decimal("100.00"),
        None,
        (
            Fill(Decimal(200), Decimal("127.0"), 1519348326),
            Fill(Decimal("0.5"), Decimal(125), 1519348327),
        ),
    )
    assert body(render_results([((("id", "1"),), Status(order))])) == (
        '<results><status id="1"><open shares="100"/>'
        '<executed shares="200" price="127" time="1519348326"/>'
        '<executed shares="0.5" price="125" time="1519348327"/></status></results>'
    )


def test_status_without_open_shares_has_no_open_child():
    order = OrderView(1, Decimal(0), None, (Fill(Decimal(3), Decimal(2), 5),))
    assert body(render_results([((("id", "1"),), Status(order))])) == (
        '<results><status id="1"><executed shares="3" price="2" time="5"/></status></results>'
    )


def test_status_of_a_canceled_order_shows_the_cancellation_first():
    order = OrderView(
        1, Decimal(0), Cancellation(Decimal(100), 9), (Fill(Decimal(3), Decimal(2), 5),)
    )
    assert body(render_results([((("id", "1"),), Status(order))])) == (
        '<results><status id="1"><canceled shares="100" time="9"/>'
        '<executed shares="3" price="2" time="5"/></status></results>'
    )


def test_canceled_reply_never_shows_open_shares():
    order = OrderView(4, Decimal(7), Cancellation(Decimal(7), 9), ())
    assert body(render_results([((("id", "4"),), Canceled(order))])) == (
        '<results><canceled id="4"><canceled shares="7" time="9"/></canceled></results>'
    )


def test_failed_is_an_error_with_the_echo_and_the_reason():
    assert body(render_results([((("id", "1"),), Failed("no such account"))])) == (
        '<results><error id="1">no such account</error></results>'
    )


def test_replies_keep_their_order():
    document = render_results([((), Failed("a")), ((("id", "2"),), Created()), ((), Failed("b"))])
    assert [child.tag for child in etree.fromstring(document)] == ["error", "created", "error"]


def test_user_text_is_escaped():
    document = render_results([((("sym", '"/><x a="'),), Failed("<b>&amp;</b>"))])
    (error,) = etree.fromstring(document)
    assert error.get("sym") == '"/><x a="' and error.text == "<b>&amp;</b>"


def test_characters_xml_cannot_carry_are_replaced():
    document = render_results([((("id", "1\x00\x1b\ud800"),), Failed("bad\x07"))])
    (error,) = etree.fromstring(document)
    assert error.get("id") == "1\ufffd\ufffd\ufffd" and error.text == "bad\ufffd"


def test_non_ascii_text_is_encoded_as_utf8():
    document = render_results([((("id", "é€😀"),), Failed("ok"))])
    assert "é€😀".encode() in document


def test_render_error_wraps_one_message():
    assert (
        body(render_error("request is empty"))
        == "<results><error>request is empty</error></results>"
    )


# -- reads (SPEC §7) -----------------------------------------------------------

STATEMENT = AccountStatement(
    "7",
    Decimal("99.50"),
    Decimal("0.5"),
    (Holding("B", Decimal(0), Decimal("2.0")), Holding("a", Decimal("1E+3"), Decimal(0))),
)
ORDERS = OpenOrders(
    (
        OpenOrder(3, "X", Decimal(-5), Decimal("12.50"), Decimal("2.5"), 1519348326),
        OpenOrder(9, "Y", Decimal(1), Decimal(1), Decimal(1), 1519348327),
    ),
    more=True,
)
BOOK = Book(
    "X",
    (PriceLevel(Decimal(127), Decimal(200), 1), PriceLevel(Decimal(125), Decimal(700), 2)),
    (PriceLevel(Decimal("128.00"), Decimal(500), 1),),
)
TRADES = Trades("X", (Trade(Decimal(200), Decimal(125), 6), Trade(Decimal(200), Decimal(127), 5)))


def test_statement_lists_positions_with_canonical_numbers():
    assert body(render_results([((), STATEMENT)])) == (
        '<results><account id="7" balance="99.5" reserved="0.5">'
        '<position sym="B" shares="0" reserved="2"/>'
        '<position sym="a" shares="1000" reserved="0"/></account></results>'
    )


def test_open_orders_show_signed_amounts_and_more_when_more_remain():
    assert body(render_results([((), ORDERS)])) == (
        '<results><orders more="true">'
        '<order id="3" sym="X" amount="-5" limit="12.5" open="2.5" time="1519348326"/>'
        '<order id="9" sym="Y" amount="1" limit="1" open="1" time="1519348327"/></orders></results>'
    )


def test_last_page_of_open_orders_has_no_more_attribute():
    assert body(render_results([((), OpenOrders((), more=False))])) == (
        "<results><orders/></results>"
    )


def test_book_lists_bids_then_asks_best_first():
    assert body(render_results([((), BOOK)])) == (
        '<results><book sym="X"><bid price="127" shares="200" orders="1"/>'
        '<bid price="125" shares="700" orders="2"/>'
        '<ask price="128" shares="500" orders="1"/></book></results>'
    )


def test_trades_carry_no_account_or_order_ids():
    assert body(render_results([((), TRADES)])) == (
        '<results><trades sym="X"><trade shares="200" price="125" time="6"/>'
        '<trade shares="200" price="127" time="5"/></trades></results>'
    )


def test_a_report_is_a_document_of_its_own_for_get():
    assert body(render_report(BOOK)) == body(render_results([((), BOOK)]))[9:-10]


def test_a_failed_report_is_the_error_document():
    assert render_report(Failed("no such symbol")) == render_error("no such symbol")


def test_json_has_the_same_fields_with_decimals_as_canonical_strings():
    assert json.loads(render_json(BOOK)) == {
        "sym": "X",
        "bids": [
            {"price": "127", "shares": "200", "orders": 1},
            {"price": "125", "shares": "700", "orders": 2},
        ],
        "asks": [{"price": "128", "shares": "500", "orders": 1}],
    }
    assert json.loads(render_json(STATEMENT))["positions"][1] == {
        "sym": "a",
        "shares": "1000",
        "reserved": "0",
    }


def test_json_order_ids_are_strings_and_more_is_always_present():
    orders = json.loads(render_json(ORDERS))
    assert orders["more"] is True
    assert orders["orders"][0] == {
        "id": "3",
        "sym": "X",
        "amount": "-5",
        "limit": "12.5",
        "open": "2.5",
        "time": 1519348326,
    }
    assert json.loads(render_json(OpenOrders((), more=False))) == {"more": False, "orders": []}


def test_json_of_a_failure_is_an_error_object():
    assert json.loads(render_json(Failed("no such symbol"))) == {"error": "no such symbol"}


QUOTES = Quotes((Quote("NEW", None, None), Quote("X", Decimal("125.50"), 6)))


def test_symbols_list_leaves_out_the_last_trade_of_a_symbol_that_never_traded():
    assert body(render_report(QUOTES)) == (
        '<symbols><symbol sym="NEW"/><symbol sym="X" price="125.5" time="6"/></symbols>'
    )


def test_symbols_list_in_json_has_null_for_a_symbol_that_never_traded():
    assert json.loads(render_json(QUOTES)) == {
        "symbols": [
            {"sym": "NEW", "price": None, "time": None},
            {"sym": "X", "price": "125.5", "time": 6},
        ]
    }
