"""Results to the `<results>` reply document (SPEC §3), built with lxml so user text is escaped."""

import re
from collections.abc import Iterable

from lxml import etree

from app.exchange.commands import Echo
from app.exchange.results import Canceled, Created, Failed, Opened, OrderView, Result, Status
from app.protocol.numbers import format_decimal

# Anything XML 1.0 cannot carry (controls, lone surrogates, U+FFFE/U+FFFF).
NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


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


def _serialize(results: etree._Element) -> bytes:
    return etree.tostring(results, xml_declaration=True, encoding="UTF-8") + b"\n"
