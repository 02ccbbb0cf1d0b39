"""The HTTP service as the shim sees it: one POST per request over pooled keep-alive connections.

Whether a failed request may have run is told by whether it was sent: a
failure before its headers went out (no connection, a refused one, no pooled
connection free in time) is *not applied*; one after (the connection cut, no
reply in time) is *outcome unknown* (app/outcomes.py). The service's own 5xx
documents already say per item which it was, and are passed on as they are.
"""

import logging
from dataclasses import dataclass
from typing import NamedTuple

import aiohttp
from lxml import etree

from app.outage import Outage
from app.outcomes import Unavailable, outcome_of
from app.protocol import render_error
from app.protocol.parser import xml_parser

log = logging.getLogger(__name__)


class Forwarded(NamedTuple):
    """The reply for the client; `ends_connection` when the service refused the client's
    proof of a key (SPEC §8: over TCP the body, then the connection closes)."""

    reply: bytes
    ends_connection: bool = False


UNAUTHENTICATED = 401


@dataclass
class _Sending:
    """What the shim knows of one request on its way to the service."""

    sent: bool = False


async def _headers_sent(session, context, params) -> None:
    context.trace_request_ctx.sent = True


class Upstream:
    """At most `concurrency` requests in flight, one per pooled connection; aiohttp queues the rest.

    The timeout covers the whole call, waiting for a pooled connection included,
    so a slow or stuck service costs a client at most that long. The service's
    going away is logged once, with a summary while it stays away, not per
    request (app/outage.py).
    """

    def __init__(self, url: str, concurrency: int, timeout: float):
        self._url = url
        self._concurrency = concurrency
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self._outage = Outage(f"service at {url}", log)

    async def __aenter__(self) -> "Upstream":
        tracing = aiohttp.TraceConfig()
        tracing.on_request_headers_sent.append(_headers_sent)
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._concurrency),
            timeout=aiohttp.ClientTimeout(total=self._timeout),
            cookie_jar=aiohttp.DummyCookieJar(),
            headers={"Content-Type": "application/xml"},
            trace_configs=[tracing],
        )
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self._session.close()

    async def forward(self, body: bytes, client: str) -> Forwarded:
        """The service's reply: its document for 2xx and 4xx, and for 5xx when it says per
        item what happened; an `<error>` of ours otherwise.

        `client` is the TCP client's address, passed on for the service's logs.
        Never raises for a failure of the service: the client always gets a reply.
        """
        sending = _Sending()
        headers = {"X-Forwarded-For": client}
        try:
            async with self._session.post(
                self._url, data=body, headers=headers, trace_request_ctx=sending
            ) as response:
                reply = await response.read()
        except TimeoutError:
            waited = "no reply" if sending.sent else "not sent"
            return self._failed(sending, f"{waited} within {self._timeout:g} s")
        except aiohttp.ClientError as error:
            return self._failed(sending, str(error) or type(error).__name__)
        if response.status >= 500 and not _states_outcomes(reply):
            # 503 is a refusal (the service's, or a proxy's with no server to send to);
            # any other 5xx came after the request was taken.
            sending.sent = response.status != 503
            return self._failed(sending, f"HTTP {response.status} {response.reason}")
        self._outage.request_served()
        return Forwarded(reply, response.status == UNAUTHENTICATED)

    def _failed(self, sending: _Sending, why: str) -> Forwarded:
        self._outage.request_failed(why)
        failure = Unavailable.SERVICE_AFTER_SENDING if sending.sent else Unavailable.SERVICE
        return Forwarded(render_error(failure.text(why)))


def _states_outcomes(reply: bytes) -> bool:
    """Whether a reply is the service's `<results>` whose every `<error>` says what became of
    its item (a database outage, a deadline), rather than a page of a proxy's or a refusal."""
    try:
        root = etree.fromstring(reply, xml_parser())
    except etree.XMLSyntaxError:
        return False
    return (
        root.tag == "results"
        and len(root) > 0
        and all(child.tag != "error" or outcome_of(child.text) is not None for child in root)
    )
