"""Request documents to commands, per SPEC §3."""

from decimal import Decimal

import pytest

from app.exchange.commands import (
    CancelOrder,
    CreateAccount,
    CreateSymbol,
    Item,
    ListOrders,
    MintShares,
    PlaceOrder,
    QueryOrder,
    Request,
    ShowAccount,
    ShowBook,
    ShowTrades,
)
from app.protocol import InvalidValue, MalformedDocument, parse_read, parse_request


def items(document: str) -> tuple[Item, ...]:
    return parse_request(document.encode()).items


def only(document: str) -> Item:
    (item,) = items(document)
    return item


def transaction(child: str) -> Item:
    """The single item of a `<transactions id="1">` holding `child`."""
    return only(f'<transactions id="1">{child}</transactions>')


# <create>: accounts


def test_account_creates_an_account_with_its_balance():
    assert only('<create><account id="007" balance="100.5"/></create>') == Item(
        echo=(("id", "007"),),
        command=CreateAccount(account_id="007", balance=Decimal("100.5")),
    )


def test_empty_create_has_no_items():
    assert parse_request(b"<create/>") == Request(items=())


def test_account_with_zero_or_negative_zero_balance_is_accepted():
    assert only('<create><account id="1" balance="-0"/></create>').command.balance == 0


def test_account_with_negative_balance_is_a_problem():
    item = only('<create><account id="1" balance="-5"/></create>')
    assert item == Item(echo=(("id", "1"),), problem="balance must not be negative")


def test_account_with_malformed_id_is_a_problem_echoing_the_raw_id():
    item = only('<create><account id="12a" balance="1"/></create>')
    assert item.echo == (("id", "12a"),) and item.problem.startswith("malformed account id")


def test_account_without_id_has_an_empty_echo():
    assert only('<create><account balance="1"/></create>') == Item(
        echo=(), problem="missing account id"
    )


def test_account_without_balance_is_a_problem():
    assert only('<create><account id="1"/></create>').problem == "missing balance"


def test_account_id_surrounded_by_whitespace_is_stripped_in_the_command_not_the_echo():
    item = only('<create><account id=" 42 " balance="1"/></create>')
    assert item.command.account_id == "42" and item.echo == (("id", " 42 "),)


def test_unknown_attributes_are_ignored():
    item = only('<create><account id="1" balance="2" colour="red"/></create>')
    assert item.command == CreateAccount(account_id="1", balance=Decimal(2))


# <create>: symbols


def test_symbol_creates_the_symbol_then_mints_shares_per_account():
    assert items(
        '<create><symbol sym="SPY"><account id="1">100</account>'
        '<account id="2"> 0.5 </account></symbol></create>'
    ) == (
        Item(echo=(), command=CreateSymbol("SPY")),
        Item(echo=(("sym", "SPY"), ("id", "1")), command=MintShares("SPY", "1", Decimal(100))),
        Item(echo=(("sym", "SPY"), ("id", "2")), command=MintShares("SPY", "2", Decimal("0.5"))),
    )


def test_create_children_keep_document_order():
    kinds = [
        type(item.command).__name__
        for item in items(
            '<create><account id="1" balance="0"/>'
            '<symbol sym="X"><account id="1">1</account></symbol>'
            '<account id="2" balance="0"/></create>'
        )
    ]
    assert kinds == ["CreateAccount", "CreateSymbol", "MintShares", "CreateAccount"]


def test_symbol_without_accounts_is_one_problem_and_creates_nothing():
    assert items('<create><symbol sym="SPY"/></create>') == (
        Item(echo=(("sym", "SPY"),), problem="symbol element has no account children"),
    )


def test_symbol_with_only_other_children_counts_as_having_no_accounts():
    assert items('<create><symbol sym="SPY"><foo/></symbol></create>') == (
        Item(echo=(("sym", "SPY"),), problem="symbol element has no account children"),
    )


def test_malformed_symbol_fails_every_grant_and_creates_nothing():
    found = items(
        '<create><symbol sym="S&amp;P"><account id="1">5</account>'
        '<account id="2">6</account></symbol></create>'
    )
    assert [item.echo for item in found] == [
        (("sym", "S&P"), ("id", "1")),
        (("sym", "S&P"), ("id", "2")),
    ]
    assert all(item.command is None and "malformed symbol" in item.problem for item in found)


def test_symbol_without_sym_attribute_fails_every_grant():
    assert only('<create><symbol><account id="1">5</account></symbol></create>') == Item(
        echo=(("id", "1"),),
        problem="missing symbol",
    )


def test_grant_with_zero_shares_is_a_problem():
    assert items('<create><symbol sym="X"><account id="1">0</account></symbol></create>')[
        1
    ] == Item(
        echo=(("sym", "X"), ("id", "1")),
        problem="share count must be greater than 0",
    )


def test_grant_without_a_number_is_a_problem():
    item = items('<create><symbol sym="X"><account id="1"/></symbol></create>')[1]
    assert item.problem == "missing share count"


def test_grant_with_nested_elements_is_a_problem():
    item = items('<create><symbol sym="X"><account id="1">1<b/>00</account></symbol></create>')[1]
    assert item.problem == "unexpected element <b> inside <account>"


def test_grant_with_malformed_account_id_is_a_problem():
    item = items('<create><symbol sym="X"><account id="">1</account></symbol></create>')[1]
    assert item == Item(echo=(("sym", "X"), ("id", "")), problem="account id is empty")


def test_unexpected_element_inside_symbol_gets_its_own_problem():
    assert items('<create><symbol sym="X"><account id="1">1</account><bar/></symbol></create>')[
        2
    ] == Item(
        echo=(("sym", "X"),),
        problem="unexpected element <bar> inside <symbol>",
    )


def test_unknown_child_of_create_is_a_problem():
    assert only("<create><order/></create>") == Item(echo=(), problem="unknown element <order>")


# <transactions>


def test_order_places_an_order_for_the_root_account():
    request = parse_request(
        b'<transactions id="7"><order sym="SPY" amount="-100" limit="145.67"/></transactions>'
    )
    assert request == Request(
        items=(
            Item(
                echo=(("sym", "SPY"), ("amount", "-100"), ("limit", "145.67")),
                command=PlaceOrder("7", "SPY", Decimal(-100), Decimal("145.67")),
            ),
        ),
        acting_account="7",
        kind="transactions",
    )


def test_order_echo_is_raw_text_in_sym_amount_limit_order():
    item = transaction('<order limit=" 2 " amount="+1.0" sym="A"/>')
    assert item.echo == (("sym", "A"), ("amount", "+1.0"), ("limit", " 2 "))
    assert item.command == PlaceOrder("1", "A", Decimal(1), Decimal(2))


def test_order_echo_leaves_out_missing_attributes():
    item = transaction('<order sym="A" limit="2"/>')
    assert item == Item(echo=(("sym", "A"), ("limit", "2")), problem="missing amount")


def test_order_with_zero_amount_is_a_problem():
    assert transaction('<order sym="A" amount="0" limit="2"/>').problem == "amount must not be 0"


def test_order_with_non_positive_limit_is_a_problem():
    assert (
        transaction('<order sym="A" amount="1" limit="-2"/>').problem
        == "limit must be greater than 0"
    )


def test_order_with_malformed_symbol_is_a_problem():
    assert "malformed symbol" in transaction('<order sym="A B" amount="1" limit="2"/>').problem


def test_order_reports_the_first_problem_in_attribute_order():
    assert transaction('<order sym="!" amount="x" limit="y"/>').problem.startswith(
        "malformed symbol"
    )


def test_query_and_cancel_carry_the_order_id():
    assert items('<transactions id="1"><query id="5"/><cancel id=" 6"/></transactions>') == (
        Item(echo=(("id", "5"),), command=QueryOrder("1", 5)),
        Item(echo=(("id", " 6"),), command=CancelOrder("1", 6)),
    )


def test_query_with_malformed_order_id_is_a_problem():
    assert transaction('<query id="abc"/>') == Item(
        echo=(("id", "abc"),),
        problem="malformed order id 'abc': must be a whole number from 0 to 9223372036854775807",
    )


def test_cancel_without_order_id_is_a_problem():
    assert transaction("<cancel/>") == Item(echo=(), problem="missing order id")


def test_unknown_child_of_transactions_is_a_problem():
    assert transaction("<buy/>") == Item(echo=(), problem="unknown element <buy>")


def test_missing_transactions_id_fails_every_child_with_its_echo():
    request = parse_request(
        b'<transactions><order sym="A" amount="1" limit="2"/><query id="3"/><x/></transactions>'
    )
    assert request == Request(
        items=(
            Item(
                echo=(("sym", "A"), ("amount", "1"), ("limit", "2")),
                problem="missing transactions id",
            ),
            Item(echo=(("id", "3"),), problem="missing transactions id"),
            Item(echo=(), problem="missing transactions id"),
        ),
        kind="transactions",
    )


def test_malformed_transactions_id_fails_every_child():
    request = parse_request(b'<transactions id="x1"><cancel id="3"/></transactions>')
    assert request.acting_account is None
    assert request.kind == "transactions"
    assert request.items[0].problem.startswith("malformed transactions id 'x1'")


def test_transactions_without_children_is_one_problem():
    assert parse_request(b'<transactions id="1">\n  text only\n</transactions>') == Request(
        items=(Item(echo=(), problem="transactions element has no children"),),
        kind="transactions",
    )


def test_whitespace_comments_and_processing_instructions_are_ignored():
    request = parse_request(
        b'<?xml version="1.0"?>\n<!-- hi --><transactions id="1">\n  <!-- c -->'
        b'<?app x?>\n  <query id="1"/>\n</transactions>\n'
    )
    assert request.items == (Item(echo=(("id", "1"),), command=QueryOrder("1", 1)),)


def test_character_references_are_decoded_in_values():
    assert only(
        '<transactions id="&#49;"><query id="&#x32;"/></transactions>'
    ).command == QueryOrder("1", 2)


def test_namespaced_root_is_not_a_request_root():
    with pytest.raises(MalformedDocument, match="root element must be"):
        parse_request(b'<create xmlns="urn:x"/>')


def test_wrong_root_is_malformed():
    with pytest.raises(MalformedDocument) as caught:
        parse_request(b"<foo/>")
    assert str(caught.value) == "root element must be <create> or <transactions>, not <foo>"


def test_encoding_declaration_is_read_as_utf8():
    declared = '<?xml version="1.0" encoding="ISO-8859-1"?>'
    request = parse_request(f'{declared}<create><account id="é" balance="1"/></create>'.encode())
    assert request.items[0].echo == (("id", "é"),)


def test_utf8_byte_order_mark_is_accepted():
    assert parse_request(b"\xef\xbb\xbf<create/>") == Request(items=())


# <transactions>: reads (SPEC §7)


def test_account_reads_the_acting_accounts_statement():
    assert transaction('<account id="9"/>') == Item(echo=(), command=ShowAccount("1"))


def test_orders_lists_every_open_order_by_default():
    assert transaction("<orders/>") == Item(echo=(), command=ListOrders("1", None, 0))


def test_orders_with_sym_and_after_echoes_them_as_sent():
    assert transaction('<orders sym=" X " after="007"/>') == Item(
        echo=(("sym", " X "), ("after", "007")), command=ListOrders("1", "X", 7)
    )


@pytest.mark.parametrize(
    "attributes, problem",
    [
        ('after="-1"', "malformed after '-1'"),
        ('after=""', "after is empty"),
        ('sym="S&amp;P"', "malformed symbol 'S&P'"),
        ('sym=""', "symbol is empty"),
    ],
)
def test_orders_with_malformed_sym_or_after_is_a_problem(attributes, problem):
    assert transaction(f"<orders {attributes}/>").problem.startswith(problem)


def test_book_shows_ten_levels_unless_depth_says():
    assert transaction('<book sym="X"/>').command == ShowBook("X", 10)
    assert transaction('<book sym="X" depth="1000"/>') == Item(
        echo=(("sym", "X"), ("depth", "1000")), command=ShowBook("X", 1000)
    )


def test_trades_shows_fifty_trades_unless_limit_says():
    assert transaction('<trades sym="X"/>').command == ShowTrades("X", 50)
    assert transaction('<trades sym="X" limit="1"/>').command == ShowTrades("X", 1)


@pytest.mark.parametrize("tag, count", [("book", "depth"), ("trades", "limit")])
@pytest.mark.parametrize("value", ["0", "1001", "2.5", "-1", "1e2", "", "ten"])
def test_depth_or_limit_outside_1_to_1000_is_a_problem_echoing_the_attributes(tag, count, value):
    item = transaction(f'<{tag} sym="X" {count}="{value}"/>')
    assert item.echo == (("sym", "X"), (count, value)) and item.command is None
    assert item.problem.startswith(f"malformed {count}") or item.problem == f"{count} is empty"


@pytest.mark.parametrize("tag", ["book", "trades"])
def test_book_or_trades_without_sym_is_a_problem(tag):
    assert transaction(f"<{tag}/>") == Item(echo=(), problem="missing symbol")


def test_reads_answer_in_document_order_among_the_other_children():
    kinds = [
        type(item.command)
        for item in items(
            '<transactions id="1"><order sym="X" amount="1" limit="1"/><book sym="X"/>'
            '<cancel id="1"/><account/><orders/><trades sym="X"/></transactions>'
        )
    ]
    assert kinds == [PlaceOrder, ShowBook, CancelOrder, ShowAccount, ListOrders, ShowTrades]


def test_reads_of_a_malformed_transactions_id_fail_echoing_their_attributes():
    failed = items('<transactions id="x"><book sym="X" depth="5"/><account/></transactions>')
    assert [item.echo for item in failed] == [(("sym", "X"), ("depth", "5")), ()]
    assert all(item.problem.startswith("malformed transactions id") for item in failed)


def test_parse_read_validates_http_parameters_as_attributes():
    assert parse_read("book", {"sym": "X", "depth": None}) == ShowBook("X", 10)
    assert parse_read("orders", {"sym": None, "after": "3"}, "1") == ListOrders("1", None, 3)
    with pytest.raises(InvalidValue, match="malformed limit '0'"):
        parse_read("trades", {"sym": "X", "limit": "0"})
