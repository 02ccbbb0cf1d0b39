"""Request documents (SPEC §3) to `Request` objects, refusing hostile XML (SPEC §3.3).

A document that cannot be answered child by child raises `ProtocolError`;
a child that is wrong on its own becomes an `Item` carrying its problem.
"""

from collections.abc import Iterator, Mapping
from enum import Enum

from lxml import etree

from app.exchange.commands import (
    BOOK_DEPTH,
    TAPE_LENGTH,
    CancelOrder,
    CreateAccount,
    CreateSymbol,
    Echo,
    Item,
    ListOrders,
    MintShares,
    PlaceOrder,
    QueryOrder,
    Read,
    Request,
    ShowAccount,
    ShowBook,
    ShowTrades,
)
from app.protocol import numbers
from app.protocol.numbers import InvalidValue
from app.protocol.render import echoed_size

MAX_DEPTH = 32
MAX_ELEMENTS = 100_000
SHOWN_CHARS = 200
# A `<symbol>`'s sym, which each of its grants echoes, is echoed cut short past this
# (the longest valid value, an account id, is 64): a huge one multiplied a small
# request into a reply of hundreds of megabytes. Other values are echoed once each.
SHARED_ECHO_CHARS = 64
# What a request's own text makes of its reply (echoes, errors for children that
# cannot run) may be at most this multiple of its size, plus the allowance.
REPLY_FACTOR = 8
REPLY_ALLOWANCE = 4096
FORBIDDEN = (b"<!DOCTYPE", b"<!ENTITY")


class Problem(Enum):
    """Every structural complaint about a request, in one table."""

    TOO_LARGE = "request is larger than the limit of {limit} bytes"
    EMPTY = "request is empty"
    NOT_UTF8 = "request is not valid UTF-8: {detail}"
    DTD = "request must not declare a DTD or entities"
    NOT_WELL_FORMED = "request is not well-formed XML: {detail}"
    TOO_DEEP = "request nests elements more than {limit} levels deep"
    TOO_MANY = "request has more than {limit} elements"
    WRONG_ROOT = "root element must be <create> or <transactions>, not <{tag}>"
    UNKNOWN_ELEMENT = "unknown element <{tag}>"
    NO_GRANTS = "symbol element has no account children"
    UNEXPECTED_IN_SYMBOL = "unexpected element <{tag}> inside <symbol>"
    UNEXPECTED_IN_GRANT = "unexpected element <{tag}> inside <account>"
    NO_TRANSACTIONS = "transactions element has no children"
    REPLY_TOO_LARGE = (
        "request would get more than {limit} bytes of echoes and errors in its reply "
        f"({REPLY_FACTOR} times its size and {REPLY_ALLOWANCE} bytes): nothing was run"
    )

    def format(self, **details) -> str:
        return self.value.format(**details)


class ProtocolError(Exception):
    """A request that gets one `<error>` for the whole document and a 4xx status."""


class MalformedDocument(ProtocolError):
    pass


class DocumentTooLarge(ProtocolError):
    """Raised with the limit alone, so a caller can refuse a body before reading it."""

    def __init__(self, limit: int):
        super().__init__(Problem.TOO_LARGE.format(limit=limit))
        self.limit = limit


def parse_request(body: bytes, max_bytes: int = 1 << 20) -> Request:
    root = _document(body, max_bytes)
    if root.tag == "create":
        request = Request(items=tuple(_create_items(root)))
    elif root.tag == "transactions":
        request = _transactions(root)
    else:
        raise MalformedDocument(Problem.WRONG_ROOT.format(tag=_clip(root.tag)))
    _check_reply_size(request, len(body))
    return request


def _check_reply_size(request: Request, size: int) -> None:
    """Refuse, before anything runs, a request whose own text would make more of its reply
    than REPLY_FACTOR times its size (plus REPLY_ALLOWANCE): many tiny children, each
    answered with an error repeating a long attribute of their parent, say.

    Counted exactly, as rendered: the error of each child that cannot run, and the
    echoed attributes of each that can; what the exchange adds (ids, refusals,
    reports) is not.
    """
    limit = REPLY_FACTOR * size + REPLY_ALLOWANCE
    if sum(echoed_size(item.echo, item.problem) for item in request.items) > limit:
        raise MalformedDocument(Problem.REPLY_TOO_LARGE.format(limit=limit))


def _document(body: bytes, max_bytes: int) -> etree._Element:
    """Parse with libxml2's safety limits on; entities are never expanded or fetched."""
    if len(body) > max_bytes:
        raise DocumentTooLarge(max_bytes)
    if not body.strip(numbers.WHITESPACE.encode()):
        raise MalformedDocument(Problem.EMPTY.value)
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise MalformedDocument(
            Problem.NOT_UTF8.format(detail=error.reason + f" at byte {error.start}")
        ) from None
    if any(marker in body for marker in FORBIDDEN):
        raise MalformedDocument(Problem.DTD.value)
    try:
        root = etree.fromstring(body, xml_parser())
    except etree.XMLSyntaxError as error:
        raise MalformedDocument(
            Problem.NOT_WELL_FORMED.format(detail=_clip(" ".join(error.msg.split())))
        ) from None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise MalformedDocument(Problem.DTD.value)
    _check_shape(root)
    return root


def xml_parser() -> etree.XMLParser:
    """A fresh parser per request: lxml parsers should not be shared between threads.

    The encoding is forced to UTF-8 whatever the document declares, so bytes
    already checked as UTF-8 are read as exactly that text. `collect_ids` keeps
    its default: turning it off makes libxml2 load a document's external DTD.
    """
    return etree.XMLParser(
        encoding="utf-8",
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        attribute_defaults=False,
        decompress=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


def _check_shape(root: etree._Element) -> None:
    """Tighter bounds than libxml2's own, so no request costs much more than its size."""
    depth = count = 0
    for event, _ in etree.iterwalk(root, events=("start", "end")):
        if event == "end":
            depth -= 1
            continue
        depth += 1
        count += 1
        if depth > MAX_DEPTH:
            raise MalformedDocument(Problem.TOO_DEEP.format(limit=MAX_DEPTH))
        if count > MAX_ELEMENTS:
            raise MalformedDocument(Problem.TOO_MANY.format(limit=MAX_ELEMENTS))


def _create_items(root: etree._Element) -> Iterator[Item]:
    for child in _children(root):
        if child.tag == "account":
            yield _account(child)
        elif child.tag == "symbol":
            yield from _symbol(child)
        else:
            yield Item(echo=(), problem=Problem.UNKNOWN_ELEMENT.format(tag=_clip(child.tag)))


def _account(element: etree._Element) -> Item:
    echo = _echo(element, ("id",))
    try:
        command = CreateAccount(
            account_id=numbers.account_id(element.get("id"), "account id"),
            balance=numbers.non_negative(element.get("balance"), "balance"),
        )
    except InvalidValue as problem:
        return Item(echo=echo, problem=str(problem))
    return Item(echo=echo, command=command)


def _symbol(element: etree._Element) -> Iterator[Item]:
    """A `CreateSymbol` item (no reply of its own), then one item per child."""
    echo = _echo(element, ("sym",), most=SHARED_ECHO_CHARS)
    children = _children(element)
    if not any(child.tag == "account" for child in children):
        yield Item(echo=echo, problem=Problem.NO_GRANTS.value)
        return
    try:
        symbol, refusal = numbers.symbol(element.get("sym"), "symbol"), None
    except InvalidValue as problem:
        symbol, refusal = None, str(problem)
    else:
        yield Item(echo=(), command=CreateSymbol(symbol))
    for child in children:
        if child.tag != "account":
            yield Item(echo=echo, problem=Problem.UNEXPECTED_IN_SYMBOL.format(tag=_clip(child.tag)))
        elif refusal:
            yield Item(echo=echo + _echo(child, ("id",)), problem=refusal)
        else:
            yield _grant(child, symbol, echo + _echo(child, ("id",)))


def _grant(element: etree._Element, symbol: str, echo: Echo) -> Item:
    nested = _children(element)
    if nested:
        return Item(echo=echo, problem=Problem.UNEXPECTED_IN_GRANT.format(tag=_clip(nested[0].tag)))
    try:
        command = MintShares(
            symbol=symbol,
            account_id=numbers.account_id(element.get("id"), "account id"),
            shares=numbers.positive(element.text, "share count"),
        )
    except InvalidValue as problem:
        return Item(echo=echo, problem=str(problem))
    return Item(echo=echo, command=command)


def _place(element: etree._Element, account: str) -> PlaceOrder:
    return PlaceOrder(
        account_id=account,
        symbol=numbers.symbol(element.get("sym"), "symbol"),
        amount=numbers.nonzero(element.get("amount"), "amount"),
        limit=numbers.positive(element.get("limit"), "limit"),
    )


def _query(element: etree._Element, account: str) -> QueryOrder:
    return QueryOrder(account_id=account, order_id=numbers.order_id(element.get("id"), "order id"))


def _cancel(element: etree._Element, account: str) -> CancelOrder:
    return CancelOrder(account_id=account, order_id=numbers.order_id(element.get("id"), "order id"))


# Reads take their attributes from anything with `.get`: an element, or HTTP parameters.
Attributes = etree._Element | Mapping[str, str | None]


def _show_account(attributes: Attributes, account: str) -> ShowAccount:
    return ShowAccount(account_id=account)


def _list_orders(attributes: Attributes, account: str) -> ListOrders:
    return ListOrders(
        account_id=account,
        symbol=_optional(attributes, "sym", numbers.symbol, "symbol", None),
        after=_optional(attributes, "after", numbers.order_id, "after", 0),
    )


def _show_book(attributes: Attributes, account: str | None) -> ShowBook:
    return ShowBook(
        symbol=numbers.symbol(attributes.get("sym"), "symbol"),
        depth=_optional(attributes, "depth", numbers.count, "depth", BOOK_DEPTH),
    )


def _show_trades(attributes: Attributes, account: str | None) -> ShowTrades:
    return ShowTrades(
        symbol=numbers.symbol(attributes.get("sym"), "symbol"),
        limit=_optional(attributes, "limit", numbers.count, "limit", TAPE_LENGTH),
    )


def _optional(attributes: Attributes, attribute: str, validate, name: str, default):
    """An attribute that may be left out; given, it must be valid, even if empty."""
    raw = attributes.get(attribute)
    return default if raw is None else validate(raw, name)


READS = {
    "account": (_show_account, ()),
    "orders": (_list_orders, ("sym", "after")),
    "book": (_show_book, ("sym", "depth")),
    "trades": (_show_trades, ("sym", "limit")),
}

TRANSACTIONS = {
    "order": (_place, ("sym", "amount", "limit")),
    "query": (_query, ("id",)),
    "cancel": (_cancel, ("id",)),
    **READS,
}


def parse_read(kind: str, attributes: Attributes, account: str | None = None) -> Read:
    """A read from HTTP parameters named as the XML attributes, validated the same way.

    Raises `InvalidValue` naming the first parameter that is wrong.
    """
    build, _ = READS[kind]
    return build(attributes, account)


def _transactions(root: etree._Element) -> Request:
    """Every child acts for the root's account; if its id is bad, every child fails."""
    children = _children(root)
    if not children:
        return Request(
            items=(Item(echo=(), problem=Problem.NO_TRANSACTIONS.value),), kind="transactions"
        )
    try:
        account = numbers.account_id(root.get("id"), "transactions id")
    except InvalidValue as problem:
        return Request(
            items=tuple(Item(echo=_transaction_echo(c), problem=str(problem)) for c in children),
            kind="transactions",
        )
    return Request(
        items=tuple(_transaction(c, account) for c in children),
        acting_account=account,
        kind="transactions",
    )


def _transaction(element: etree._Element, account: str) -> Item:
    if element.tag not in TRANSACTIONS:
        return Item(echo=(), problem=Problem.UNKNOWN_ELEMENT.format(tag=_clip(element.tag)))
    build, echoed = TRANSACTIONS[element.tag]
    echo = _echo(element, echoed)
    try:
        return Item(echo=echo, command=build(element, account))
    except InvalidValue as problem:
        return Item(echo=echo, problem=str(problem))


def _transaction_echo(element: etree._Element) -> Echo:
    return _echo(element, TRANSACTIONS[element.tag][1]) if element.tag in TRANSACTIONS else ()


def _children(element: etree._Element) -> list[etree._Element]:
    """Child elements only: text between them is ignored, comments and PIs are already gone."""
    return list(element.iterchildren(etree.Element))


def _echo(element: etree._Element, names: tuple[str, ...], most: int | None = None) -> Echo:
    """The attributes a reply repeats, raw as written, in the order the reply lists them;
    with `most`, one longer than that cut short."""
    return tuple(
        (name, value if most is None else _clip(value, most))
        for name in names
        if (value := element.get(name)) is not None
    )


def _clip(text: str, most: int = SHOWN_CHARS) -> str:
    return text if len(text) <= most else text[:most] + "..."
