"""The HTTP service as the shim sees it: one POST per request over pooled keep-alive connections."""

import logging
from typing import NamedTuple

import aiohttp

from app.protocol import render_error

log = logging.getLogger(__name__)


class Forwarded(NamedTuple):
    """The reply for the client; `ends_connection` when the service refused the client's
    proof of a key (SPEC §8: over TCP the body, then the connection closes)."""

    reply: bytes
    ends_connection: bool = False


UNAUTHENTICATED = 401


class Upstream:
    """At most `concurrency` requests in flight, one per pooled connection; aiohttp queues the rest.

    The timeout covers the whole call, waiting for a pooled connection included,
    so a slow or stuck service costs a client at most that long.
    """

    def __init__(self, url: str, concurrency: int, timeout: float):
        self._url = url
        self._concurrency = concurrency
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> "Upstream":
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._concurrency),
            timeout=aiohttp.ClientTimeout(total=self._timeout),
            cookie_jar=aiohttp.DummyCookieJar(),
            headers={"Content-Type": "application/xml"},
        )
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self._session.close()

    async def forward(self, body: bytes, client: str) -> Forwarded:
        """The service's reply: its document for 2xx and 4xx, an `<error>` of ours otherwise.

        `client` is the TCP client's address, passed on for the service's logs.
        Never raises for a failure of the service: the client always gets a reply.
        """
        headers = {"X-Forwarded-For": client}
        try:
            async with self._session.post(self._url, data=body, headers=headers) as response:
                reply = await response.read()
        except TimeoutError:
            return self._unavailable(f"no reply within {self._timeout:g} s")
        except aiohttp.ClientError as error:
            return self._unavailable(str(error) or type(error).__name__)
        if response.status >= 500:
            return self._unavailable(f"HTTP {response.status} {response.reason}")
        return Forwarded(reply, response.status == UNAUTHENTICATED)

    def _unavailable(self, why: str) -> Forwarded:
        log.warning("service at %s unavailable: %s", self._url, why)
        return Forwarded(render_error(f"service unavailable: {why}"))
