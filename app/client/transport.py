"""How the client reaches the exchange: a request document over HTTP or the legacy TCP protocol.

Over TCP the request is framed as SPEC §5.2 says, and the reply is read
whichever way the shim frames it: with a length line, or bare XML ended by
closing the connection or by the end of the `<results>` element.
"""

import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable

from lxml import etree

from app.auth.proof import Credentials

MAX_LENGTH_LINE = 20  # as app/shim/framing.py; a longer first line is XML
READ_CHUNK = 64 * 1024


class TransportError(Exception):
    """No usable reply: nothing came back, or what came back is not a reply."""


def tcp_sender(
    address: tuple[str, int], timeout: float, credentials: Credentials | None = None
) -> Callable[[bytes], bytes]:
    """Each body behind the prefix that proves the key, when there are `credentials`."""

    def send(body: bytes) -> bytes:
        if credentials:
            body = credentials.prefixed(body)
        with socket.create_connection(address, timeout=timeout) as connection:
            connection.sendall(b"%d\n%s" % (len(body), body))
            with connection.makefile("rb") as stream:
                return read_reply(stream)

    return send


def http_sender(
    url: str, timeout: float, credentials: Credentials | None = None
) -> Callable[[bytes], bytes]:
    def send(body: bytes) -> bytes:
        return http_post(url, body, timeout, credentials=credentials)[1]

    return send


def http_post(
    url: str,
    body: bytes,
    timeout: float,
    headers: dict | None = None,
    credentials: Credentials | None = None,
) -> tuple[int, bytes]:
    """The status and body of the reply; 4xx and 5xx carry an `<error>` document too. With
    `credentials`, the header that proves the key, signed anew for each call."""
    headers = {"Content-Type": "application/xml", **(headers or {})}
    if credentials:
        headers["Authorization"] = credentials.header("POST", request_target(url), body)
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def read_reply(stream) -> bytes:
    """One reply from the shim, framed with a length line or not."""
    first = stream.readline(MAX_LENGTH_LINE + 1)
    digits = first.rstrip(b"\r\n")
    if first.endswith(b"\n") and digits.isdigit():
        reply = stream.read(int(digits))
        if len(reply) < int(digits):
            raise TransportError(
                f"connection closed after {len(reply)} of {int(digits)} reply bytes"
            )
        return reply
    return _read_bare_document(stream, first)


def _read_bare_document(stream, start: bytes) -> bytes:
    """Read until the root element closes or the connection does, whichever comes first."""
    parser = etree.XMLPullParser(events=("end",), resolve_entities=False, no_network=True)
    received = bytearray()
    chunk = start
    while chunk:
        received += chunk
        try:
            parser.feed(chunk)
            if any(element.getparent() is None for _, element in parser.read_events()):
                break
        except etree.XMLSyntaxError as error:
            raise TransportError(f"reply is not XML: {error}") from None
        chunk = stream.read1(READ_CHUNK)
    if not received:
        raise TransportError("connection closed without a reply")
    return bytes(received)


def request_target(url: str) -> str:
    """What a request to `url` names as its target, and so what its proof signs."""
    parts = urllib.parse.urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
