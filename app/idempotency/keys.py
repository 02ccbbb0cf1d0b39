"""Reading an idempotency key from an HTTP request: its header, or the prefix of its body."""

import hashlib
import re

from app.protocol import MalformedDocument
from app.protocol.prefixes import take_prefix

HEADER = "Idempotency-Key"
PREFIX = "exch-idempotency"
KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")


class MalformedKey(MalformedDocument):
    """A key that breaks SPEC §9's rules, a malformed prefix, or two keys: answered 400."""


def request_key(header: str | None, body: bytes) -> tuple[str | None, bytes]:
    """The request's key, if any, and the document: the body after the prefix when it
    has one. A key in both the header and the prefix is refused rather than one of
    them picked."""
    prefixed = take_prefix(body, PREFIX)
    if prefixed is None:
        return (_valid(header) if header is not None else None), body
    attributes, document = prefixed
    if attributes is None or set(attributes) != {"key"}:
        raise MalformedKey(f'malformed {PREFIX} prefix: expected <?{PREFIX} key="K"?>')
    if header is not None:
        raise MalformedKey(f"idempotency key given twice: in the {HEADER} header and the prefix")
    return _valid(attributes["key"]), document


def fingerprint(document: bytes) -> bytes:
    """What tells a repeat from another request under the same key."""
    return hashlib.sha256(document).digest()


def _valid(key: str) -> str:
    if KEY.fullmatch(key) is None:
        raise MalformedKey(
            f"malformed idempotency key {key[:80]!r}: "
            "1 to 64 characters of A-Z, a-z, 0-9, '_' and '-'"
        )
    return key
