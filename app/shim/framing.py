"""SPEC §5.2 framing: a line holding the body's length in decimal, a newline, then the body."""

import asyncio

from app.protocol import DocumentTooLarge

MAX_LENGTH_LINE = 20  # characters before the newline, a trailing "\r" included
READ_CHUNK = 64 * 1024


class FramingError(Exception):
    """A request that cannot be read: the message is the error reply, then the connection closes."""


class RequestReader:
    """Splits one connection's bytes into request bodies, however they are fragmented.

    Keeps its own buffer, so bytes past the end of one request (a client that
    pipelines on a kept-open connection) wait for the next call. The idle
    timeout restarts whenever bytes arrive: it measures progress, not total time.
    """

    def __init__(self, reader: asyncio.StreamReader, max_body_bytes: int, idle_timeout: float):
        self._reader = reader
        self._max_body_bytes = max_body_bytes
        self._idle_timeout = idle_timeout
        self._buffer = bytearray()
        self._requests_read = 0
        self._length: int | None = None
        self._deadline: asyncio.Timeout | None = None

    async def next_request(self) -> bytes | None:
        """The next body; None when the client is done: closed, or silent between requests."""
        self._length = None
        try:
            async with asyncio.timeout(self._idle_timeout) as self._deadline:
                self._length = await self._read_length()
                if self._length is None:
                    return None
                body = await self._read_body(self._length)
        except TimeoutError:
            if self._inside_request():
                raise FramingError(
                    f"request stalled: no bytes for {self._idle_timeout:g} s"
                ) from None
            return None
        self._requests_read += 1
        return body

    def _inside_request(self) -> bool:
        """A fresh connection owes a request; silence between kept-open requests is no stall."""
        return self._requests_read == 0 or bool(self._buffer) or self._length is not None

    async def _read_length(self) -> int | None:
        while (newline := self._buffer.find(b"\n", 0, MAX_LENGTH_LINE + 1)) < 0:
            if len(self._buffer) > MAX_LENGTH_LINE:
                raise FramingError(f"length line longer than {MAX_LENGTH_LINE} characters")
            if not await self._fill():
                if self._buffer:
                    raise FramingError("connection closed inside the length line")
                return None
        line = bytes(self._buffer[:newline])
        del self._buffer[: newline + 1]
        return parse_length(line, self._max_body_bytes)

    async def _read_body(self, length: int) -> bytes:
        while len(self._buffer) < length:
            if not await self._fill():
                raise FramingError(
                    f"connection closed after {len(self._buffer)} of the {length} bytes announced"
                )
        body = bytes(self._buffer[:length])
        del self._buffer[:length]
        return body

    async def _fill(self) -> bool:
        """Wait for more bytes; False at end of input."""
        chunk = await self._reader.read(READ_CHUNK)
        if not chunk:
            return False
        self._buffer += chunk
        self._deadline.reschedule(asyncio.get_running_loop().time() + self._idle_timeout)
        return True


def parse_length(line: bytes, max_body_bytes: int) -> int:
    """ASCII digits, then at most a carriage return: no sign, no spaces, nothing to guess."""
    digits = line.removesuffix(b"\r")
    if not digits.isdigit():
        shown = line.decode("ascii", "replace")
        raise FramingError(
            f"malformed length line {shown!r}: expected decimal digits and a newline"
        )
    length = int(digits)
    if length > max_body_bytes:
        raise FramingError(str(DocumentTooLarge(max_body_bytes)))
    return length


def frame_reply(reply: bytes, with_length: bool) -> bytes:
    return b"%d\n%s" % (len(reply), reply) if with_length else reply
