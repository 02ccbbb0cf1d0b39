"""The XML wire format: request bytes to commands, results to reply bytes."""

from app.protocol.numbers import InvalidValue, format_decimal
from app.protocol.parser import (
    DocumentTooLarge,
    MalformedDocument,
    ProtocolError,
    parse_read,
    parse_request,
)
from app.protocol.render import render_error, render_results

__all__ = [
    "DocumentTooLarge",
    "InvalidValue",
    "MalformedDocument",
    "ProtocolError",
    "format_decimal",
    "parse_read",
    "parse_request",
    "render_error",
    "render_results",
]
