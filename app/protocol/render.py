"""Results to the `<results>` reply document (SPEC §3), built with lxml so user text is escaped.

A read's report (SPEC §7) is also a document of its own, for `GET`: the same
element as the root, or the same fields as JSON.
"""

import json
import re
from collections.abc import Iterable

from lxml import etree

from app.exchange.commands import Echo
from app.exchange.results import (
    AccountStatement,
    Book,
    Canceled,
    Created,
    Failed,
    Opened,
    OpenOrders,
    OrderView,
    PriceLevel,
    Quotes,
    Report,
    Result,
    Status,
    Trade,
    Trades,
)
from app.protocol.numbers import format_decimal

# Anything XML 1.0 cannot carry (controls, lone surrogates, U+FFFE/U+FFFF).
NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
ESCAPED = re.compile('[&<>"\t\n\r]')  # what lxml may write otherwise than as itself


def render_results(replies: Iterable[tuple[Echo, Result]]) -> bytes:
    results = etree.Element("results")
    for echo, result in replies:
        _reply(results, echo, result)
    return _serialize(results)


def render_error(message: str) -> bytes:
    """The whole reply for a document that cannot be answered child by child (SPEC §3.3)."""
    results = etree.Element("results")
    _child(results, "error", ()).text = _safe(message)
    return _serialize(results)


def echoed_size(echo: Echo, problem: str | None) -> int:
    """The bytes of what a request's child makes of the reply by its own text: an `<error>`
    with its echoed attributes, and the problem that stops it if any, as lxml writes it.

    Counted rather than rendered, for it is asked of every child of every request.
    """
    size = len("<error") + sum(len(name) + 4 + _escaped_size(value, True) for name, value in echo)
    if problem is None:
        return size + len("/>")
    return size + len("></error>") + _escaped_size(problem, False)


def _escaped_size(text: str, in_attribute: bool) -> int:
    """UTF-8 bytes of `text` once escaped: `&amp;`, `&lt;`, `&gt;`, and in an attribute
    `&quot;`, `&#9;`, `&#10;`, and `&#13;` anywhere."""
    if text.isascii() and text.isprintable() and not ESCAPED.search(text):  # the usual case
        return len(text)
    text = _safe(text)
    size = (
        len(text.encode())
        + 4 * text.count("&")
        + 3 * (text.count("<") + text.count(">"))
        + 4 * text.count("\r")
    )
    if in_attribute:
        size += 5 * text.count('"') + 3 * text.count("\t") + 4 * text.count("\n")
    return size


def render_report(report: Report | Failed) -> bytes:
    """A read's report as the document's root element; a failure as the error document."""
    if isinstance(report, Failed):
        return render_error(report.reason)
    return _serialize(_report_element(report))


def render_json(report: Report | Failed) -> bytes:
    """A read's report as a JSON object with the XML's fields, a failure as `{"error": why}`.

    Each kind of child becomes a list named by the plural of its tag (`bids`,
    `positions`), present even when empty. Decimals are strings in canonical
    form, so no reader turns them into binary floats; order ids are strings
    too (they may exceed 2**53); times and counts are numbers, `more` a boolean.
    """
    if isinstance(report, Failed):
        return json.dumps({"error": report.reason}).encode()
    _, fields, children = _report_fields(report)
    lists = {f"{child}s": items for child, items in children.items()}
    return json.dumps({**fields, **lists}).encode()


Fields = dict[str, str | int | bool | None]


def _report_fields(report: Report) -> tuple[str, Fields, dict[str, list[Fields]]]:
    """The report's tag, its own fields, and its children's fields by tag, in document order."""
    match report:
        case AccountStatement():
            own = {
                "id": report.account_id,
                "balance": format_decimal(report.balance),
                "reserved": format_decimal(report.reserved),
            }
            positions = [
                {
                    "sym": holding.symbol,
                    "shares": format_decimal(holding.shares),
                    "reserved": format_decimal(holding.reserved),
                }
                for holding in report.holdings
            ]
            return "account", own, {"position": positions}
        case OpenOrders():
            orders = [
                {
                    "id": str(order.order_id),
                    "sym": order.symbol,
                    "amount": format_decimal(order.amount),
                    "limit": format_decimal(order.limit),
                    "open": format_decimal(order.open_shares),
                    "time": order.time,
                }
                for order in report.orders
            ]
            return "orders", {"more": report.more}, {"order": orders}
        case Book():
            sides = {"bid": _levels(report.bids), "ask": _levels(report.asks)}
            return "book", {"sym": report.symbol}, sides
        case Trades():
            trades = [trade_fields(trade) for trade in report.trades]
            return "trades", {"sym": report.symbol}, {"trade": trades}
        case Quotes():
            quotes = [
                {
                    "sym": quote.symbol,
                    "price": None if quote.price is None else format_decimal(quote.price),
                    "time": quote.time,
                }
                for quote in report.quotes
            ]
            return "symbols", {}, {"symbol": quotes}
    raise TypeError(f"cannot render {report!r}")


def trade_fields(trade: Trade) -> Fields:
    """A trade's fields, as the tape shows them and as a stream's trade event carries them."""
    return {
        "shares": format_decimal(trade.shares),
        "price": format_decimal(trade.price),
        "time": trade.time,
    }


def _levels(levels: tuple[PriceLevel, ...]) -> list[Fields]:
    return [
        {
            "price": format_decimal(level.price),
            "shares": format_decimal(level.shares),
            "orders": level.orders,
        }
        for level in levels
    ]


def _report_element(report: Report) -> etree._Element:
    tag, fields, children = _report_fields(report)
    element = etree.Element(tag)
    _set(element, fields)
    for child, items in children.items():
        for item in items:
            _set(etree.SubElement(element, child), item)
    return element


def _set(element: etree._Element, fields: Fields) -> None:
    """Attributes in order; a flag is written `"true"` when set and left out when not, and
    a field without a value (None, `null` in JSON) is left out."""
    for name, value in fields.items():
        if value is True:
            element.set(name, "true")
        elif value is not False and value is not None:
            element.set(name, _safe(str(value)))


def _reply(results: etree._Element, echo: Echo, result: Result) -> None:
    match result:
        case Created():
            _child(results, "created", echo)
        case Opened(order_id=order_id):
            _child(results, "opened", echo + (("id", str(order_id)),))
        case Status(order=order):
            _order(_child(results, "status", echo), order, show_open=True)
        case Canceled(order=order):
            _order(_child(results, "canceled", echo), order, show_open=False)
        case Failed(reason=reason):
            _child(results, "error", echo).text = _safe(reason)
        case AccountStatement() | OpenOrders() | Book() | Trades():
            results.append(_report_element(result))
        case _:
            raise TypeError(f"cannot render {result!r}")


def _order(element: etree._Element, order: OrderView, show_open: bool) -> None:
    """Open or canceled shares first, then the executions, oldest first."""
    if show_open and order.open_shares > 0:
        _child(element, "open", (("shares", format_decimal(order.open_shares)),))
    if order.canceled is not None:
        _child(
            element,
            "canceled",
            (
                ("shares", format_decimal(order.canceled.shares)),
                ("time", str(order.canceled.time)),
            ),
        )
    for fill in order.fills:
        _child(
            element,
            "executed",
            (
                ("shares", format_decimal(fill.shares)),
                ("price", format_decimal(fill.price)),
                ("time", str(fill.time)),
            ),
        )


def _child(parent: etree._Element, tag: str, attributes: Echo) -> etree._Element:
    element = etree.SubElement(parent, tag)
    for name, value in attributes:
        element.set(name, _safe(value))
    return element


def _safe(text: str) -> str:
    return NOT_XML.sub("\ufffd", text)


def _serialize(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8") + b"\n"
