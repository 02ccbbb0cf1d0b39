"""One client connection as the server's task sees it: whole requests in, replies out.

A plain asyncio Protocol rather than asyncio's streams: the transport's
callbacks only record what happened (bytes, end of input, a closed socket, a
full or drained write buffer) and wake the task, which reads the state and
decides. Bytes are framed as they arrive, so a request that comes in one
segment costs the task a single wakeup, where streams cost a future and a
wakeup for every read, and timeouts are plain timer handles.
"""

import asyncio

from app.ratelimit import client_host
from app.shim.framing import FramingError, RequestFramer

READ_AHEAD = 256 * 1024  # bytes past the current request buffered before reading pauses
LINGER_SECONDS = 2.0


class ClientConnection(asyncio.Protocol):
    """The transport side of one client, with the idle timeout on every wait for it.

    The idle timeout restarts whenever bytes arrive: it measures progress, not
    total time.
    """

    def __init__(self, peer, max_body_bytes: int, idle_timeout: float):
        self._peer = peer
        self._framer = RequestFramer(max_body_bytes)
        self._idle_timeout = idle_timeout
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future | None = None
        self._requests_read = 0
        self._last_progress = self._loop.time()
        self._reading = True
        self._discarding = False  # closing: input no longer matters
        self._discarded_more = False  # closing dropped more than whitespace after a request
        self._write_paused = False
        self._input_ended = False
        self._lost = False
        self._lost_because: Exception | None = None

    def __str__(self) -> str:
        """The peer's address, for log lines: formatted only when one is written."""
        peer = self._peer
        return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)

    @property
    def host(self) -> str:
        """The peer's address without its port: what warnings about a client are counted by."""
        return client_host(self._peer)

    @property
    def discarded_more_after_a_request(self) -> bool:
        """Closing dropped more than whitespace sent after a whole request: most likely the
        next request of a client that expected the connection to stay open."""
        return self._discarded_more

    # -- the transport's callbacks: record, then wake the task --------------

    def connection_made(self, transport: asyncio.Transport) -> None:
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        if self._discarding:
            self._discarded_more |= self._requests_read > 0 and not data.isspace()
            return
        self._framer.feed(data)
        self._last_progress = self._loop.time()
        if self._reading and self._framer.read_ahead > READ_AHEAD:
            self._transport.pause_reading()
            self._reading = False
        self._wake()

    def eof_received(self) -> bool:
        self._input_ended = True
        self._wake()
        return True  # keep the transport open: the reply still has to go out

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._lost_because = exc
        self._wake()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake()

    # -- what the server's task calls ----------------------------------------

    async def next_request(self) -> bytes | None:
        """The next body; None when the client is done: closed, or silent between requests.

        Raises FramingError for a request that cannot be read (the error
        reply's text), ConnectionError when the client vanished mid-request.
        """
        self._last_progress = self._loop.time()
        while (body := self._framer.next_body()) is None:
            if self._input_ended or self._lost:
                if not self._framer.inside_request:
                    return None
                if self._lost_because is not None:
                    raise ConnectionError(f"client gone mid-request: {self._lost_because}")
                raise self._framer.truncated()
            deadline = self._last_progress + self._idle_timeout
            if self._loop.time() >= deadline:
                if self._owes_request():
                    raise FramingError(f"request stalled: no bytes for {self._idle_timeout:g} s")
                return None
            self._resume_reading()
            await self._wait_until(deadline)
        self._requests_read += 1
        return body

    async def send(self, data: bytes) -> None:
        """Write one reply; ConnectionError when the client has gone, TimeoutError when it
        does not take the reply within the idle timeout."""
        if not self._lost:
            self._transport.write(data)
        deadline = self._loop.time() + self._idle_timeout
        while self._write_paused and not self._lost:
            if self._loop.time() >= deadline:
                raise TimeoutError(f"not taken within {self._idle_timeout:g} s")
            await self._wait_until(deadline)
        if self._lost:
            raise ConnectionError(f"client gone: {self._lost_because or 'connection closed'}")

    async def close(self) -> None:
        """Send FIN, discard input until the client closes too, then close; at most LINGER_SECONDS.

        Closing a socket with unread input makes the kernel send RST, which can
        destroy a reply the client has not read yet: think of a client that sends a
        newline its length did not count, or an error reply to a body still coming.
        What is dropped besides whitespace shows in `discarded_more_after_a_request`.
        """
        self._discarding = True
        self._discarded_more = self._requests_read > 0 and self._framer.holds_more_than_whitespace
        deadline = self._loop.time() + LINGER_SECONDS
        try:
            if not self._lost:
                self._transport.write_eof()
                self._resume_reading()
            while not (self._input_ended or self._lost) and self._loop.time() < deadline:
                await self._wait_until(deadline)
            # With the reply all in the kernel's hands, close() closes at once;
            # else it first sends the rest, and the loss is reported after it.
            sending = not self._lost and self._transport.get_write_buffer_size() > 0
            self._transport.close()
            while sending and not self._lost and self._loop.time() < deadline:
                await self._wait_until(deadline)
        finally:
            self._transport.abort()  # no-op once closed; else drops what the client would not take

    def _owes_request(self) -> bool:
        """A fresh connection owes a request; silence between kept-open requests is no stall."""
        return self._requests_read == 0 or self._framer.inside_request

    def _resume_reading(self) -> None:
        if not self._reading:
            self._transport.resume_reading()
            self._reading = True

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def _wait_until(self, deadline: float) -> None:
        """Until a callback reports something or `deadline` passes; the caller checks which."""
        self._waiter = self._loop.create_future()
        timer = self._loop.call_at(deadline, self._wake)
        try:
            await self._waiter
        finally:
            timer.cancel()
            self._waiter = None
