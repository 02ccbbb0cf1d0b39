"""The HTTP service as the shim sees it: one POST per request over pooled keep-alive connections.

The client is pyreqwest: Rust's reqwest (hyper on tokio, in a thread of its
own) behind a thin Python binding. A request costs the shim a handful of
calls into compiled code, where aiohttp runs a few hundred lines of Python;
that was the larger part of the shim's CPU per request (docs/shim.md).
"""

import http
import logging
from datetime import timedelta

from pyreqwest.client import ClientBuilder
from pyreqwest.exceptions import PyreqwestError, RequestTimeoutError

from app.protocol import render_error

log = logging.getLogger(__name__)

# Below the service's own keep-alive (gunicorn: 75 s), so that the service
# never closes an idle connection just as a request goes out on it.
IDLE_CONNECTION_SECONDS = 15


class Upstream:
    """At most `concurrency` requests in flight; the others wait for a slot in arrival order.

    The timeout covers the whole call, waiting for a slot included, so a slow
    or stuck service costs a client at most that long.
    """

    def __init__(self, url: str, concurrency: int, timeout: float):
        self._url = url
        self._concurrency = concurrency
        self._timeout = timeout
        self._client = None

    async def __aenter__(self) -> "Upstream":
        self._client = (
            ClientBuilder()
            .max_connections(self._concurrency)
            .timeout(timedelta(seconds=self._timeout))
            .pool_idle_timeout(timedelta(seconds=IDLE_CONNECTION_SECONDS))
            .no_proxy()  # the service is reached directly, whatever HTTP_PROXY says
            .default_headers({"Content-Type": "application/xml"})
            .build()
        )
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self._client.close()

    async def forward(self, body: bytes) -> bytes:
        """The service's reply: its document for 2xx and 4xx, an `<error>` of ours otherwise.

        Never raises for a failure of the service: the client always gets a reply.
        """
        try:
            response = await self._client.post(self._url).body_bytes(body).build().send()
            reply = await response.bytes()
        except RequestTimeoutError:
            return self._unavailable(f"no reply within {self._timeout:g} s")
        except PyreqwestError as error:
            return self._unavailable(_reason(error))
        if response.status >= 500:
            return self._unavailable(f"HTTP {response.status} {_phrase(response.status)}")
        return bytes(reply)

    def _unavailable(self, why: str) -> bytes:
        log.warning("service at %s unavailable: %s", self._url, why)
        return render_error(f"service unavailable: {why}")


def _reason(error: PyreqwestError) -> str:
    """What failed and why at the root: `connection error: Connection refused (os error 111)`."""
    details = getattr(error, "details", None) or {}
    causes = details.get("causes") or []
    return f"{error.message}: {causes[-1]['message']}" if causes else error.message


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "(unknown status)"
