"""SPEC §5.2 framing: a line holding the body's length in decimal, a newline, then the body."""

from app.protocol import DocumentTooLarge

MAX_LENGTH_LINE = 20  # characters before the newline, a trailing "\r" included


class FramingError(Exception):
    """A request that cannot be read: the message is the error reply, then the connection closes."""


class RequestFramer:
    """Splits one connection's bytes into request bodies, however they are fragmented.

    It does no I/O: the connection feeds it bytes as they arrive and takes the
    bodies it completes, so framing costs no await of its own. Bytes past the
    end of one request (a client that pipelines on a kept-open connection) wait
    for the next.
    """

    def __init__(self, max_body_bytes: int):
        self._max_body_bytes = max_body_bytes
        self._buffer = bytearray()
        self._length: int | None = None  # of the body being read, once its length line is in

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def next_body(self) -> bytes | None:
        """The next complete body, or None until more bytes arrive.

        Raises FramingError as soon as the bytes cannot start a valid request:
        the 21st character of a length line without a newline fails at once.
        """
        if self._length is None:
            newline = self._buffer.find(b"\n", 0, MAX_LENGTH_LINE + 1)
            if newline < 0:
                if len(self._buffer) > MAX_LENGTH_LINE:
                    raise FramingError(f"length line longer than {MAX_LENGTH_LINE} characters")
                return None
            self._length = parse_length(bytes(self._buffer[:newline]), self._max_body_bytes)
            del self._buffer[: newline + 1]
        if len(self._buffer) < self._length:
            return None
        with memoryview(self._buffer) as buffered:
            body = buffered[: self._length].tobytes()
        del self._buffer[: self._length]
        self._length = None
        return body

    @property
    def inside_request(self) -> bool:
        """Part of a request is buffered: some of a length line, or a body still incomplete."""
        return bool(self._buffer) or self._length is not None

    @property
    def holds_more_than_whitespace(self) -> bool:
        """Bytes past the last body that a stray newline would not explain: another request."""
        return self._length is not None or bool(self._buffer.strip())

    @property
    def read_ahead(self) -> int:
        """Bytes buffered past the body being read: what a client sent ahead of its turn."""
        return len(self._buffer) - (self._length or 0)

    def truncated(self) -> FramingError:
        """What to tell a client whose input ended inside a request."""
        if self._length is None:
            return FramingError("connection closed inside the length line")
        return FramingError(
            f"connection closed after {len(self._buffer)} of the {self._length} bytes announced"
        )


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
