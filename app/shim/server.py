"""The TCP server: accepts legacy clients, reads their requests, relays the service's replies.

Every stage is bounded, so a flood of clients queues instead of growing tasks
or memory without limit:

1. the kernel's accept backlog (BACKLOG) holds connections not yet accepted;
2. at most `max_connections` connections are served at once, one task each;
   while all those slots are taken the shim stops calling accept() and the
   backlog holds the rest, so no connection is dropped for want of a task;
3. at most `concurrency` requests are forwarded at once, one per pooled
   keep-alive connection to the service; aiohttp queues the others in order.

A connection reads its whole request before it queues for the service, so a
slow client occupies a connection slot, never a connection to the service. (A
fixed pool of workers taking sockets from a queue would instead let a few slow
clients hold every worker while fast ones wait.)
"""

import asyncio
import logging
import socket

from app.protocol import render_error
from app.ratelimit import RateLimitedWarnings
from app.shim.config import ShimConfig
from app.shim.connection import ClientConnection
from app.shim.framing import FramingError, frame_reply
from app.shim.upstream import Forwarded, Upstream

log = logging.getLogger(__name__)

BACKLOG = 4096
ACCEPT_RETRY_SECONDS = 0.1
REQUESTS_LOST = (
    "sent more after its request, discarded as the connection closes after one reply: "
    "EXCHANGE_SHIM_KEEP_OPEN=1 serves clients that send several requests on one connection"
)


class Shim:
    """The legacy protocol on one listening socket, for as long as `serve` runs."""

    def __init__(self, config: ShimConfig):
        self._config = config
        self._listener: socket.socket | None = None
        self._watching = False  # the event loop calls accept when the listener is readable
        self._connections: set[asyncio.Task] = set()
        self._between_requests: set[asyncio.Task] = set()
        self._stopping = False
        self._upstream: Upstream | None = None
        self._client_warnings = RateLimitedWarnings(log)

    async def serve(self, stop: asyncio.Event) -> None:
        """Serve until `stop` is set, then finish the requests in flight and return."""
        config = self._config
        listener = listen(config.host, config.port)
        host, port = listener.getsockname()[:2]
        log.info(
            "listening on %s:%d, forwarding to %s; %s", host, port, config.upstream, framing(config)
        )
        async with Upstream(
            config.upstream, config.concurrency, config.upstream_timeout
        ) as self._upstream:
            try:
                await self._accept_until(stop, listener)
            finally:
                listener.close()
                await self._finish_in_flight()
        self._client_warnings.flush()
        log.info("stopped")

    async def _accept_until(self, stop: asyncio.Event, listener: socket.socket) -> None:
        """Accept connections until `stop` is set."""
        self._listener = listener
        self._watch_listener()
        try:
            await stop.wait()
        finally:
            self._stopping = True
            self._unwatch_listener()

    def _watch_listener(self) -> None:
        """Accept whenever the backlog holds a connection; idempotent, and a no-op once stopping."""
        if not self._watching and not self._stopping:
            asyncio.get_running_loop().add_reader(self._listener, self._accept_waiting)
            self._watching = True

    def _unwatch_listener(self) -> None:
        if self._watching:
            asyncio.get_running_loop().remove_reader(self._listener)
            self._watching = False

    def _accept_waiting(self) -> None:
        """Accept what the backlog holds while slots are free; stop watching when none are.

        Called by the event loop when the listener is readable: one registration
        for the listener's lifetime instead of one per accept, and no task wakeup.
        """
        while len(self._connections) < self._config.max_connections:
            try:
                client, peer = self._listener.accept()
            except BlockingIOError:
                return
            except OSError as error:  # out of file descriptors, and the like: wait, retry
                log.warning("accept failed: %s", error)
                self._unwatch_listener()
                asyncio.get_running_loop().call_later(ACCEPT_RETRY_SECONDS, self._watch_listener)
                return
            task = asyncio.create_task(self._serve_connection(client, peer))
            self._connections.add(task)
            task.add_done_callback(self._connection_closed)
        self._unwatch_listener()

    def _connection_closed(self, task: asyncio.Task) -> None:
        self._connections.discard(task)
        self._watch_listener()
        if not task.cancelled() and task.exception() is not None:
            log.error("serving a connection failed", exc_info=task.exception())

    async def _finish_in_flight(self) -> None:
        """Close connections idle between requests; give the others the upstream timeout."""
        for task in self._between_requests:
            task.cancel()
        if not self._connections:
            return
        log.info("finishing %d connections", len(self._connections))
        _, unfinished = await asyncio.wait(self._connections, timeout=self._config.upstream_timeout)
        for task in unfinished:
            task.cancel()
        await asyncio.gather(*unfinished, return_exceptions=True)

    async def _serve_connection(self, client_socket: socket.socket, peer) -> None:
        config = self._config
        _, client = await asyncio.get_running_loop().connect_accepted_socket(
            lambda: ClientConnection(peer, config.max_body_bytes, config.idle_timeout),
            client_socket,
        )
        try:
            await self._answer(client)
        except FramingError as error:
            log.warning("%s: %s", client, error)
            await self._send(client, render_error(str(error)))
        except ConnectionError as error:
            log.warning("%s: %s", client, error)
        finally:
            await client.close()
            if client.discarded_more_after_a_request and not config.keep_open:
                self._client_warnings.warn(client.host, REQUESTS_LOST)

    async def _answer(self, client: ClientConnection) -> None:
        """One request, or in keep-open mode requests until the client is done or we stop."""
        body = await client.next_request()
        while body is not None:
            forwarded = await self._forward(body, client)
            if not await self._send(client, forwarded.reply):
                return
            if not self._config.keep_open or self._stopping or forwarded.ends_connection:
                return
            body = await self._wait_between_requests(client)

    async def _wait_between_requests(self, client: ClientConnection) -> bytes | None:
        """A wait that shutdown may cancel: no request is in flight during it."""
        task = asyncio.current_task()
        self._between_requests.add(task)
        try:
            return await client.next_request()
        finally:
            self._between_requests.discard(task)

    async def _forward(self, body: bytes, client: ClientConnection) -> Forwarded:
        if not log.isEnabledFor(logging.DEBUG):
            return await self._upstream.forward(body, client.host)
        loop = asyncio.get_running_loop()
        started = loop.time()
        forwarded = await self._upstream.forward(body, client.host)
        log.debug(
            "%s: %d-byte request, %d-byte reply in %.1f ms",
            client,
            len(body),
            len(forwarded.reply),
            (loop.time() - started) * 1000,
        )
        return forwarded

    async def _send(self, client: ClientConnection, reply: bytes) -> bool:
        """Write one reply; False when the client has gone or takes longer than the idle timeout."""
        try:
            await client.send(frame_reply(reply, self._config.reply_length))
        except (ConnectionError, TimeoutError) as error:
            log.warning("%s: reply not delivered: %s", client, error)
            return False
        return True


def framing(config: ShimConfig) -> str:
    """The framing the shim speaks, as its start line says it (docs/shim.md: which clients)."""
    connections = "connections kept open" if config.keep_open else "one request per connection"
    replies = "replies length-prefixed" if config.reply_length else "replies bare"
    settings = (
        f"EXCHANGE_SHIM_KEEP_OPEN={int(config.keep_open)}, "
        f"EXCHANGE_SHIM_REPLY_LENGTH={int(config.reply_length)}"
    )
    return f"{connections}, {replies} ({settings})"


def listen(host: str, port: int) -> socket.socket:
    """A listening socket with a deep backlog, for any address family `host` resolves to."""
    family, *_ = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    listener = socket.create_server((host, port), family=family, backlog=BACKLOG)
    listener.setblocking(False)
    return listener
