"""The wire formats: request bytes to commands, results to reply bytes (XML, or JSON for reads)."""

from app.protocol.numbers import InvalidValue, format_decimal
from app.protocol.parser import (
    DocumentTooLarge,
    MalformedDocument,
    ProtocolError,
    parse_read,
    parse_request,
)
from app.protocol.render import render_error, render_json, render_report, render_results

__all__ = [
    "DocumentTooLarge",
    "InvalidValue",
    "MalformedDocument",
    "ProtocolError",
    "format_decimal",
    "parse_read",
    "parse_request",
    "render_error",
    "render_json",
    "render_report",
    "render_results",
]
