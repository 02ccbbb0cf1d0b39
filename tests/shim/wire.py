"""Talking to a shim over real sockets, with a timeout on every operation."""

import socket
import struct
import time

from lxml import etree

TIMEOUT = 10.0
PAUSE = 0.02  # between writes, so that each goes out as a TCP segment of its own


def framed(body: bytes, newline: bytes = b"\n") -> bytes:
    return b"%d%s%s" % (len(body), newline, body)


def connect(address, timeout: float = TIMEOUT, source: str | None = None) -> socket.socket:
    """A connection from `source`, a loopback address other than 127.0.0.1 if the test
    needs clients the shim tells apart."""
    source_address = (source, 0) if source else None
    connection = socket.create_connection(address, timeout=timeout, source_address=source_address)
    connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return connection


def send_in_parts(connection: socket.socket, *parts: bytes) -> None:
    for part in parts:
        connection.sendall(part)
        time.sleep(PAUSE)


def read_to_end(connection: socket.socket) -> bytes:
    """Everything until the shim closes; a timeout fails the test instead of hanging it."""
    received = bytearray()
    while chunk := connection.recv(65536):
        received += chunk
    return bytes(received)


def converse(address, *parts: bytes, timeout: float = TIMEOUT) -> bytes:
    """Send `parts` as separate segments, then read until the shim closes."""
    with connect(address, timeout) as connection:
        send_in_parts(connection, *parts)
        return read_to_end(connection)


def read_framed_reply(stream) -> bytes:
    """One reply of a shim that prefixes replies with their length line."""
    line = stream.readline()
    assert line.endswith(b"\n") and line[:-1].isdigit(), f"no length line: {line!r}"
    reply = stream.read(int(line))
    assert len(reply) == int(line), "reply shorter than its length line"
    return reply


def reset(connection: socket.socket) -> None:
    """Close with RST, as a client that crashes does."""
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    connection.close()


def children(reply: bytes) -> list[tuple[str, dict, str | None]]:
    """The `<results>` children as (tag, attributes, text) triples."""
    root = etree.fromstring(reply)
    assert root.tag == "results", reply
    return [(child.tag, dict(child.attrib), child.text) for child in root]


def error_text(reply: bytes) -> str:
    [(tag, _, text)] = children(reply)
    assert tag == "error", reply
    return text
