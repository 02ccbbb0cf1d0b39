"""Processing instructions a client may put before its document (SPEC §8, §9).

`<?exch-auth key="K" ts="T" nonce="N" sig="S"?>` carries a proof over the
legacy TCP protocol (or in an HTTP body); `<?exch-idempotency key="K"?>`
names a request so that it can be sent again. Each is read off the front of
the bytes before the document is parsed: the bytes after it are what the
proof signs, or the rest of the request.

Only the shape is read here, `name="value"` pairs separated by single
spaces; what the values must be is for the concern that uses them.
"""

import re

MAX_PREFIX_BYTES = 512  # far more than any valid prefix needs
_ATTRIBUTE = re.compile(rb' ([a-z]+)="([^"<>]*)"')


def take_prefix(body: bytes, name: str) -> tuple[dict[str, str] | None, bytes] | None:
    """None when `body` does not begin with the `name` prefix; else its attributes and
    the bytes after it. The attributes are None when the prefix is malformed: no end
    within MAX_PREFIX_BYTES, a stray character, an attribute given twice."""
    opening = b"<?" + name.encode("ascii")
    if not body.startswith(opening) or body[len(opening) : len(opening) + 1] not in (b" ", b"?"):
        return None
    end = body.find(b"?>", len(opening), MAX_PREFIX_BYTES)
    if end < 0:
        return None, body
    inside, rest = body[len(opening) : end], body[end + 2 :]
    attributes: dict[str, str] = {}
    position = 0
    while position < len(inside):
        match = _ATTRIBUTE.match(inside, position)
        if match is None:
            return None, rest
        key, value = match.group(1).decode("ascii"), match.group(2)
        if key in attributes or not value.isascii():
            return None, rest
        attributes[key] = value.decode("ascii")
        position = match.end()
    return attributes, rest
