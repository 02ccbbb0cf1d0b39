"""Sending a request so that it is neither lost nor run twice (SPEC §9).

Each request gets a key of its own, the same for every attempt; an attempt
that gets no reply (the connection refused, cut or timed out), or a reply
saying the service could not take it (502, 503) or gave none in time (504,
a balancer's), or that the first attempt is still running (409), is sent
again after a pause that doubles, with jitter, up to a total time. Over the
legacy TCP protocol status codes do not travel: the shim's `service
unavailable` error and `request in progress` say it. With credentials each
attempt is signed anew (SPEC §8: a proof is accepted once), the key inside
what is signed over TCP.
"""

import http.client
import random
import secrets
import time
from collections.abc import Callable

import tenacity
from lxml import etree

from app.auth.proof import Credentials
from app.client.transport import TransportError, http_post, tcp_sender
from app.outcomes import outcome_of

HEADER = "Idempotency-Key"
RESENT_STATUSES = frozenset({409, 502, 503, 504})
IN_PROGRESS = "request in progress"
FIRST_PAUSE_S = 0.05
LONGEST_PAUSE_S = 2.0
RESEND_FOR_S = 60.0


class NotTaken(Exception):
    """The attempt's request was not (or not yet) answered: send it again."""


RESENT_FAILURES = (NotTaken, OSError, http.client.HTTPException, TransportError)


def new_key() -> str:
    """24 characters of A-Z a-z 0-9 _ -: 144 random bits."""
    return secrets.token_urlsafe(18)


def with_prefix(key: str, body: bytes) -> bytes:
    """The body as sent over TCP: the key's prefix, then the document."""
    return b'<?exch-idempotency key="%s"?>%s' % (key.encode("ascii"), body)


def not_taken(reply: bytes) -> bool:
    """Whether a reply over TCP says the request was not taken, or is still running: the
    first attempt's 409, or every child failed for want of a part of the service (the
    shim's own error, or the service's per child: app/outcomes.py), whatever the outcome,
    as a repeat under the key runs nothing twice."""
    try:
        root = etree.fromstring(reply, etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError:
        return False
    texts = [child.text for child in root if child.tag == "error"]
    if root.tag != "results" or not texts or len(texts) != len(root):
        return False
    return texts == [IN_PROGRESS] or all(outcome_of(text) is not None for text in texts)


def resending(attempt: Callable[[], bytes], resend_for: float = RESEND_FOR_S) -> bytes:
    """`attempt()` until it returns, for at most `resend_for` seconds; the last failure
    is raised when time is up. An attempt raises NotTaken, OSError (the connection),
    http.client.HTTPException or TransportError for another try.

    The first attempt goes out without the retry machinery: nearly every request is
    taken at once, and a load generator sending thousands a second would spend a
    share of its CPU on that machinery. A failed first attempt is followed by the
    pause a retry would have drawn, then the backoff."""
    deadline = time.monotonic() + resend_for
    try:
        return attempt()
    except RESENT_FAILURES:
        if time.monotonic() >= deadline:
            raise
    time.sleep(random.uniform(0, FIRST_PAUSE_S))
    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(RESENT_FAILURES),
        wait=tenacity.wait_random_exponential(multiplier=FIRST_PAUSE_S, max=LONGEST_PAUSE_S),
        stop=tenacity.stop_after_delay(max(deadline - time.monotonic(), 0)),
        reraise=True,
    )
    return retrying(attempt)


def keyed_tcp_sender(
    address: tuple[str, int],
    timeout: float,
    resend_for: float,
    credentials: Credentials | None = None,
) -> Callable[[bytes], bytes]:
    """Each request with a key of its own, sent again until taken."""
    send_once = tcp_sender(address, timeout, credentials)

    def send(body: bytes) -> bytes:
        keyed = with_prefix(new_key(), body)

        def attempt() -> bytes:
            reply = send_once(keyed)
            if not_taken(reply):
                raise NotTaken(reply.decode("utf-8", "replace"))
            return reply

        return resending(attempt, resend_for)

    return send


def keyed_http_sender(
    url: str, timeout: float, resend_for: float, credentials: Credentials | None = None
) -> Callable[[bytes], bytes]:
    """Each request with a key of its own, sent again until taken."""

    def send(body: bytes) -> bytes:
        headers = {HEADER: new_key()}

        def attempt() -> bytes:
            status, reply = http_post(url, body, timeout, headers, credentials)
            if status in RESENT_STATUSES:
                raise NotTaken(f"HTTP {status}")
            return reply

        return resending(attempt, resend_for)

    return send
