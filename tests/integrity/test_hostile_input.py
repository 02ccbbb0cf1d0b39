"""SPEC §1, §3, §3.3 and §7 end to end: hostile and invalid input over HTTP and the TCP shim.

One table, every row sent over both paths to the session's real servers. Each
row names its exact outcome: a whole-document `<error>` with its HTTP status,
or the `<results>` children one for one. After every row the service is
healthy and not one row of any table has changed. (tests/protocol/test_hostile.py
checks the parser itself with the same documents.) A second table sends hostile
reads as `GET` parameters.
"""

from dataclasses import dataclass
from xml.sax.saxutils import quoteattr

import pytest
import requests
from lxml import etree

from tests.conftest import SMALL_BODY_LIMIT, empty_tables
from tests.integrity.books import broken_rules, snapshot
from tests.protocol.test_hostile import DTD_REFUSED, LAUGHS, NOT_WELL_FORMED
from tests.shim.wire import children, converse, framed

# The market every row attacks, built once: account 2 is the attacker, 1 its victim.
SETUP = (
    '<create><account id="1" balance="1000"/><account id="2" balance="1000"/>'
    '<symbol sym="SPY"><account id="1">100</account><account id="2">100</account></symbol>'
    "</create>",
    '<transactions id="1"><order sym="SPY" amount="10" limit="5"/>'
    '<order sym="SPY" amount="-10" limit="50"/></transactions>',
    '<transactions id="2"><order sym="SPY" amount="1" limit="4"/>'
    '<order sym="SPY" amount="-1" limit="60"/><cancel id="4"/></transactions>',
)
VICTIM_BUY, VICTIM_SELL, OWN_OPEN, OWN_CANCELED = "1", "2", "3", "4"

NO_ORDER = "no such order for this account"
TOO_LARGE = f"request is larger than the limit of {SMALL_BODY_LIMIT} bytes"
ORDER_ID_RANGE = "must be a whole number from 0 to 9223372036854775807"
DIGITS_100 = "9" * 100
SHOWN_100 = f"'{'9' * 32}'..."


@dataclass(frozen=True)
class Whole:
    """The document is refused as a whole: one `<error>`, and this status over HTTP."""

    status: int
    message: str
    exact: bool = True

    def check(self, status: int | None, reply: bytes) -> None:
        assert status in (None, self.status)
        [(tag, attributes, text)] = children(reply)
        assert (tag, attributes) == ("error", {})
        assert text == self.message if self.exact else text.startswith(self.message), text


@dataclass(frozen=True)
class Each:
    """Answered child by child (status 200): exactly these `<results>` children."""

    replies: tuple[tuple[str, dict, str | None], ...]

    def check(self, status: int | None, reply: bytes) -> None:
        assert status in (None, 200)
        assert children(reply) == list(self.replies)


def error(text: str, **attributes: str) -> tuple[str, dict, str]:
    return ("error", attributes, text)


def each(*replies) -> Each:
    return Each(tuple(replies))


def not_well_formed(detail: str = "") -> Whole:
    return Whole(400, f"{NOT_WELL_FORMED}: {detail}" if detail else NOT_WELL_FORMED, exact=False)


def order_error(text: str, **attributes: str) -> tuple[bytes, Each]:
    """One `<order>` of the attacker, refused with `text`; its attributes echoed as sent."""
    element = "".join(f" {name}={quoteattr(value)}" for name, value in attributes.items())
    return attacker(f"<order{element}/>"), each(error(text, **attributes))


def attacker(*children: str) -> bytes:
    return f'<transactions id="2">{"".join(children)}</transactions>'.encode()


def create(*children: str) -> bytes:
    return f"<create>{''.join(children)}</create>".encode()


def malformed(name: str, shown: str, why: str) -> str:
    return f"malformed {name} {shown}: {why}"


EXPONENT = "exponent notation is not allowed"
NOT_FINITE = "NaN and Infinity are not numbers"
NOT_DECIMAL = "not a plain decimal number"
WHOLE_DIGITS = "more than 12 digits before the decimal point"
FRACTION_DIGITS = "more than 8 digits after the decimal point"
NOT_ACCOUNT = "must be 1 to 64 ASCII digits"
NOT_SYMBOL = "must be 1 to 32 ASCII letters and digits"
COUNT_RANGE = "must be a whole number from 1 to 1000"


def nested(depth: int) -> bytes:
    return b"<create>" + b"<a>" * depth + b"</a>" * depth + b"</create>"


CATALOGUE = {
    # -- SPEC §3.3: documents refused as a whole
    "billion-laughs": (LAUGHS, Whole(400, DTD_REFUSED)),
    "external-file-entity": (
        b'<!DOCTYPE create [<!ENTITY e SYSTEM "file:///etc/passwd">]><create>&e;</create>',
        Whole(400, DTD_REFUSED),
    ),
    "external-http-entity": (
        b'<!DOCTYPE create [<!ENTITY e SYSTEM "http://127.0.0.1:9/e">]><create>&e;</create>',
        Whole(400, DTD_REFUSED),
    ),
    "external-parameter-entity": (
        b'<!DOCTYPE create [<!ENTITY % p SYSTEM "http://127.0.0.1:9/p"> %p;]><create/>',
        Whole(400, DTD_REFUSED),
    ),
    "external-dtd": (
        b'<!DOCTYPE create SYSTEM "file:///etc/passwd"><create/>',
        Whole(400, DTD_REFUSED),
    ),
    "internal-dtd": (b"<!DOCTYPE create><create/>", Whole(400, DTD_REFUSED)),
    "nesting-past-the-depth-cap": (
        nested(33),
        Whole(400, "request nests elements more than 32 levels deep"),
    ),
    "nesting-past-libxml2s-depth-limit": (nested(500), not_well_formed("Excessive depth")),
    "ten-megabyte-body": (create() + b" " * (10 << 20), Whole(413, TOO_LARGE)),
    "one-byte-over-the-limit": (
        create() + b" " * (SMALL_BODY_LIMIT + 1 - len(create())),
        Whole(413, TOO_LARGE),
    ),
    "invalid-utf8": (
        b'<create><account id="\xff" balance="1"/></create>',
        Whole(400, "request is not valid UTF-8: invalid start byte at byte 21"),
    ),
    "latin1-declared": (
        '<?xml version="1.0" encoding="ISO-8859-1"?><create><account id="é"/></create>'.encode(
            "latin-1"
        ),
        Whole(400, "request is not valid UTF-8: invalid continuation byte at byte 64"),
    ),
    "utf16": ("<create/>".encode("utf-16"), Whole(400, "request is not valid UTF-8", exact=False)),
    "empty-body": (b"", Whole(400, "request is empty")),
    "whitespace-body": (b" \r\n\t ", Whole(400, "request is empty")),
    "not-xml": (b"hello", not_well_formed()),
    "unclosed-root": (b"<create>", not_well_formed()),
    "two-roots": (b"<create/><create/>", not_well_formed("Extra content at the end")),
    "duplicated-attribute": (
        b'<create><account id="5" id="6" balance="1"/></create>',
        not_well_formed("Attribute id redefined"),
    ),
    "undeclared-entity": (b"<create>&xxe;</create>", not_well_formed("Entity 'xxe' not defined")),
    "nul-byte": (b"<create>\x00</create>", not_well_formed()),
    "control-character-reference": (b'<create><account id="&#1;"/></create>', not_well_formed()),
    "wrong-root": (
        b"<results/>",
        Whole(400, "root element must be <create> or <transactions>, not <results>"),
    ),
    "namespaced-root": (
        b'<x:create xmlns:x="urn:x"/>',
        Whole(400, "root element must be <create> or <transactions>, not <{urn:x}create>"),
    ),
    # -- SPEC §1 numbers, answered in the child's place
    "amount-1e309": order_error(
        malformed("amount", "'1e309'", EXPONENT), sym="SPY", amount="1e309", limit="1"
    ),
    "limit-nan": order_error(
        malformed("limit", "'NaN'", NOT_FINITE), sym="SPY", amount="1", limit="NaN"
    ),
    "amount-infinity": order_error(
        malformed("amount", "'Infinity'", NOT_FINITE), sym="SPY", amount="Infinity", limit="1"
    ),
    "limit-minus-infinity": order_error(
        malformed("limit", "'-Infinity'", NOT_FINITE), sym="SPY", amount="1", limit="-Infinity"
    ),
    "amount-minus-zero": order_error("amount must not be 0", sym="SPY", amount="-0", limit="1"),
    "amount-zero": order_error("amount must not be 0", sym="SPY", amount="0.000", limit="1"),
    "limit-zero": order_error("limit must be greater than 0", sym="SPY", amount="1", limit="0"),
    "limit-negative": order_error(
        "limit must be greater than 0", sym="SPY", amount="1", limit="-5"
    ),
    "amount-40-digits": order_error(
        malformed("amount", f"'{'1234567890' * 3}12'...", WHOLE_DIGITS),
        sym="SPY",
        amount="1234567890" * 4,
        limit="1",
    ),
    "limit-9-decimal-places": order_error(
        malformed("limit", "'1.123456789'", FRACTION_DIGITS),
        sym="SPY",
        amount="1",
        limit="1.123456789",
    ),
    "amount-thousands-separator": order_error(
        malformed("amount", "'1,000'", "digit separators are not allowed"),
        sym="SPY",
        amount="1,000",
        limit="1",
    ),
    "amount-non-ascii-digits": order_error(
        malformed("amount", "'١٠'", NOT_DECIMAL), sym="SPY", amount="١٠", limit="1"
    ),
    "amount-empty": order_error("amount is empty", sym="SPY", amount="  ", limit="1"),
    "amount-missing": order_error("missing amount", sym="SPY", limit="1"),
    "limit-missing": order_error("missing limit", sym="SPY", amount="1"),
    # -- symbols
    "symbol-with-quote": order_error(
        malformed("symbol", "'S\"Y'", NOT_SYMBOL), sym='S"Y', amount="1", limit="1"
    ),
    "symbol-with-angle-brackets": order_error(
        malformed("symbol", "'<b>'", NOT_SYMBOL), sym="<b>", amount="1", limit="1"
    ),
    "symbol-non-ascii-letters": order_error(
        malformed("symbol", "'ÄPFEL'", NOT_SYMBOL), sym="ÄPFEL", amount="1", limit="1"
    ),
    "symbol-unknown": order_error("no such symbol", sym="NOPE", amount="1", limit="1"),
    "create-symbol-with-apostrophe": (
        create('<symbol sym="S\'Y"><account id="2">5</account></symbol>'),
        each(error(malformed("symbol", '"S\'Y"', NOT_SYMBOL), sym="S'Y", id="2")),
    ),
    # -- accounts
    "create-account-id-with-letters": (
        create('<account id="12a" balance="1"/>'),
        each(error(malformed("account id", "'12a'", NOT_ACCOUNT), id="12a")),
    ),
    "create-account-id-100-digits": (
        create(f'<account id="{DIGITS_100}" balance="1"/>'),
        each(error(malformed("account id", SHOWN_100, NOT_ACCOUNT), id=DIGITS_100)),
    ),
    "create-account-negative-balance": (
        create('<account id="7" balance="-5"/>'),
        each(error("balance must not be negative", id="7")),
    ),
    "create-account-balance-1e309": (
        create('<account id="7" balance="1e309"/>'),
        each(error(malformed("balance", "'1e309'", EXPONENT), id="7")),
    ),
    "create-account-balance-missing": (
        create('<account id="7"/>'),
        each(error("missing balance", id="7")),
    ),
    "create-existing-account": (
        create('<account id="1" balance="1000000"/>'),
        each(error("account already exists", id="1")),
    ),
    "transactions-id-with-letters": (
        b'<transactions id="2x"><query id="3"/><order sym="SPY" amount="1" limit="1"/>'
        b"</transactions>",
        each(
            error(malformed("transactions id", "'2x'", NOT_ACCOUNT), id="3"),
            error(
                malformed("transactions id", "'2x'", NOT_ACCOUNT), sym="SPY", amount="1", limit="1"
            ),
        ),
    ),
    "transactions-id-100-digits": (
        f'<transactions id="{DIGITS_100}"><cancel id="3"/></transactions>'.encode(),
        each(error(malformed("transactions id", SHOWN_100, NOT_ACCOUNT), id="3")),
    ),
    "transactions-id-missing": (
        b'<transactions><cancel id="3"/></transactions>',
        each(error("missing transactions id", id="3")),
    ),
    "transactions-unknown-account": (
        b'<transactions id="999"><cancel id="3"/><query id="3"/></transactions>',
        each(error("no such account", id="3"), error("no such account", id="3")),
    ),
    # -- shares
    "grant-zero-shares": (
        create('<symbol sym="SPY"><account id="2">0</account></symbol>'),
        each(error("share count must be greater than 0", sym="SPY", id="2")),
    ),
    "grant-negative-shares": (
        create('<symbol sym="SPY"><account id="2">-100</account></symbol>'),
        each(error("share count must be greater than 0", sym="SPY", id="2")),
    ),
    "grant-to-unknown-account": (
        create('<symbol sym="SPY"><account id="999">5</account><bogus/></symbol>'),
        each(
            error("no such account", sym="SPY", id="999"),
            error("unexpected element <bogus> inside <symbol>", sym="SPY"),
        ),
    ),
    "grant-with-nested-element": (
        create('<symbol sym="SPY"><account id="2">5<x/></account></symbol>'),
        each(error("unexpected element <x> inside <account>", sym="SPY", id="2")),
    ),
    "symbol-without-grants": (
        create('<symbol sym="SPY"/>'),
        each(error("symbol element has no account children", sym="SPY")),
    ),
    # -- funds and positions (attacker: 996 cash free after its open buy, 100 shares)
    "buy-beyond-funds": order_error(
        "insufficient funds: order needs 1000000, balance is 996",
        sym="SPY",
        amount="1000",
        limit="1000",
    ),
    "buy-of-largest-numbers": order_error(
        "insufficient funds: order needs 999999999998000000000001, balance is 996",
        sym="SPY",
        amount="999999999999",
        limit="999999999999",
    ),
    "sell-beyond-position": order_error(
        "insufficient shares: order needs 101, position is 100",
        sym="SPY",
        amount="-101",
        limit="1",
    ),
    # -- other accounts' orders, missing orders, malformed ids
    "query-another-accounts-order": (
        attacker(f'<query id="{OWN_OPEN}"/>', f'<query id="{VICTIM_BUY}"/>'),
        each(
            ("status", {"id": OWN_OPEN}, None),
            error(NO_ORDER, id=VICTIM_BUY),
        ),
    ),
    "cancel-another-accounts-order": (
        attacker(f'<cancel id="{VICTIM_SELL}"/>'),
        each(error(NO_ORDER, id=VICTIM_SELL)),
    ),
    "cancel-missing-order": (attacker('<cancel id="999999"/>'), each(error(NO_ORDER, id="999999"))),
    "cancel-already-canceled": (
        attacker(f'<cancel id="{OWN_CANCELED}"/>'),
        each(error("order has no open shares to cancel", id=OWN_CANCELED)),
    ),
    "query-id-past-bigint": (
        attacker('<query id="99999999999999999999"/>'),
        each(
            error(
                malformed("order id", "'99999999999999999999'", ORDER_ID_RANGE),
                id="99999999999999999999",
            )
        ),
    ),
    "cancel-negative-id": (
        attacker('<cancel id="-1"/>'),
        each(error(malformed("order id", "'-1'", ORDER_ID_RANGE), id="-1")),
    ),
    "query-id-missing": (attacker("<query/>"), each(error("missing order id"))),
    # -- unknown elements, empty requests
    "unknown-element-in-transactions": (
        attacker("<transfer to='1' amount='5'/>"),
        each(error("unknown element <transfer>")),
    ),
    "unknown-element-in-create": (create("<deposit/>"), each(error("unknown element <deposit>"))),
    "transactions-without-children": (
        b'<transactions id="2"/>',
        each(error("transactions element has no children")),
    ),
    # -- SPEC §7: reads with malformed or out-of-range attributes, echoed as sent
    "book-depth-zero": (
        attacker('<book sym="SPY" depth="0"/>'),
        each(error(malformed("depth", "'0'", COUNT_RANGE), sym="SPY", depth="0")),
    ),
    "book-depth-past-1000": (
        attacker('<book sym="SPY" depth="1001"/>'),
        each(error(malformed("depth", "'1001'", COUNT_RANGE), sym="SPY", depth="1001")),
    ),
    "book-depth-exponent": (
        attacker('<book sym="SPY" depth="1e2"/>'),
        each(error(malformed("depth", "'1e2'", EXPONENT), sym="SPY", depth="1e2")),
    ),
    "trades-limit-fraction": (
        attacker('<trades sym="SPY" limit="2.5"/>'),
        each(error(malformed("limit", "'2.5'", COUNT_RANGE), sym="SPY", limit="2.5")),
    ),
    "trades-limit-nan": (
        attacker('<trades sym="SPY" limit="NaN"/>'),
        each(error(malformed("limit", "'NaN'", NOT_FINITE), sym="SPY", limit="NaN")),
    ),
    "trades-unknown-symbol": (
        attacker('<trades sym="NOPE"/>'),
        each(error("no such symbol", sym="NOPE")),
    ),
    "book-without-sym": (attacker('<book depth="5"/>'), each(error("missing symbol", depth="5"))),
    "orders-after-negative": (
        attacker('<orders after="-1"/>'),
        each(error(malformed("after", "'-1'", ORDER_ID_RANGE), after="-1")),
    ),
    "orders-sym-malformed": (
        attacker('<orders sym="S P"/>'),
        each(error(malformed("symbol", "'S P'", NOT_SYMBOL), sym="S P")),
    ),
    "orders-unknown-symbol": (
        attacker('<orders sym="NOPE" after="1"/>'),
        each(error("no such symbol", sym="NOPE", after="1")),
    ),
    "reads-of-an-unknown-account": (
        b'<transactions id="404"><account/><book sym="SPY"/><orders after="1"/></transactions>',
        each(
            error("no such account"),
            error("no such account", sym="SPY"),
            error("no such account", after="1"),
        ),
    ),
}


def over_http(server: str, shim, body: bytes) -> tuple[int, bytes]:
    response = requests.post(
        server, data=body, headers={"Content-Type": "application/xml"}, timeout=30
    )
    return response.status_code, response.content


def over_tcp(server: str, shim, body: bytes) -> tuple[None, bytes]:
    return None, converse(shim.address, framed(body))


@pytest.fixture(scope="module")
def market_under_attack(server, schema_engine):
    """The market every row attacks, built once: no row may change it."""
    empty_tables(schema_engine)
    with requests.Session() as session:
        replies = [session.post(server, data=body.encode(), timeout=30) for body in SETUP]
    assert all(reply.status_code == 200 and b"<error" not in reply.content for reply in replies)
    opened = [e.get("id") for r in replies for e in etree.fromstring(r.content).iter("opened")]
    assert opened == [VICTIM_BUY, VICTIM_SELL, OWN_OPEN, OWN_CANCELED]
    return schema_engine


@pytest.mark.parametrize("send", [over_http, over_tcp], ids=["http", "tcp"])
@pytest.mark.parametrize("body, outcome", CATALOGUE.values(), ids=CATALOGUE.keys())
def test_hostile_input_gets_its_specified_error_and_changes_nothing(
    body, outcome, send, server, shim, market_under_attack
):
    engine = market_under_attack
    before = snapshot(engine)
    status, reply = send(server, shim, body)
    outcome.check(status, reply)
    assert snapshot(engine) == before
    assert broken_rules(engine) == []
    assert requests.get(f"{server}/health", timeout=10).status_code == 200


# SPEC §7 over `GET`: (path and query, status, the error's start), against the real server.
HOSTILE_READS = {
    "depth-zero": ("/symbols/SPY/book?depth=0", 400, malformed("depth", "'0'", COUNT_RANGE)),
    "limit-thousands-of-digits": (
        "/symbols/SPY/trades?limit=" + "9" * 3000,
        400,
        "malformed limit '99999999999999999999999999999999'...",
    ),
    "after-twice": ("/accounts/2/orders?after=1&after=1", 400, "Invalid parameter"),
    "sym-invalid-utf8": ("/accounts/2/orders?sym=%FF", 400, "malformed symbol"),
    "account-nul": ("/accounts/%00/orders", 400, "malformed account id"),
    "unknown-symbol": ("/symbols/NOPE/trades", 404, "no such symbol"),
    "unknown-account": ("/accounts/404", 404, "no such account"),
}


@pytest.mark.parametrize("target, status, message", HOSTILE_READS.values(), ids=HOSTILE_READS)
def test_hostile_read_over_get_gets_its_error_and_changes_nothing(
    target, status, message, server, market_under_attack
):
    before = snapshot(market_under_attack)
    response = requests.get(f"{server}{target}", timeout=30)
    assert response.status_code == status
    [(tag, attributes, text)] = children(response.content)
    assert (tag, attributes) == ("error", {}) and text.startswith(message), text
    assert snapshot(market_under_attack) == before


def test_an_account_lists_only_its_own_open_orders_over_get(server, market_under_attack):
    listed = etree.fromstring(requests.get(f"{server}/accounts/2/orders", timeout=30).content)
    assert [order.get("id") for order in listed] == [OWN_OPEN]
