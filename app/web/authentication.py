"""The web side of authentication (SPEC §8): what a request proves, and how refusals are answered.

Every failed proof gets the same reply, 401 with `WWW-Authenticate`; its
cause goes to the metrics and to a warning naming the client, at most one
per client every 10 s (app/ratelimit.py), never to the reply.
"""

import logging

import falcon

from app.auth.gate import Gate, Pass
from app.auth.refusals import AuthenticationFailed, Forbidden, NotPermitted, RateLimited
from app.exchange.results import Failed
from app.ratelimit import RateLimitedWarnings
from app.web import metrics
from app.web.media import XML, negotiated

log = logging.getLogger(__name__)

CHALLENGE = 'EXCH1-HMAC-SHA256 realm="exchange"'
_warnings = RateLimitedWarnings(log)


def request_target(req: falcon.Request) -> str:
    """The request target as the client sent it (gunicorn keeps it in RAW_URI)."""
    return req.env.get("RAW_URI") or req.relative_uri


def proven(gate: Gate, req: falcon.Request, body: bytes = b"") -> Pass:
    """The request's pass: the key it proves (None with authentication off) and its body without
    a prefix, to be used as a context around the request's work. Raises AuthenticationFailed."""
    authorization = req.get_header("Authorization")
    admitted = gate.admit(req.method, request_target(req), authorization, body)
    req.context.key = admitted.key
    return admitted


def register(app: falcon.App) -> None:
    app.add_error_handler(AuthenticationFailed, _authentication_failed)
    app.add_error_handler(RateLimited, _rate_limited)
    app.add_error_handler(Forbidden, _refused(falcon.HTTP_403))
    app.add_error_handler(NotPermitted, _refused(falcon.HTTP_403))


def client(req: falcon.Request) -> str:
    """The peer, and whom it says it forwards (the shim, a load balancer): for the logs only."""
    forwarded = req.get_header("X-Forwarded-For")
    return f"{req.remote_addr} (for {forwarded})" if forwarded else str(req.remote_addr)


def _authentication_failed(req, resp, error: AuthenticationFailed, params) -> None:
    metrics.AUTH_FAILURES.labels(error.cause).inc()
    _warnings.warn(client(req), f"failed authentication: {error.cause}")
    req.context.error = f"{error}: {error.cause}"
    resp.set_header("WWW-Authenticate", CHALLENGE)
    _answer(req, resp, falcon.HTTP_401, str(error))


def _rate_limited(req, resp, error: RateLimited, params) -> None:
    metrics.RATE_LIMITED.inc()
    req.context.key = error.key
    req.context.error = str(error)
    resp.set_header("Retry-After", str(error.retry_after))
    _answer(req, resp, falcon.HTTP_429, str(error))


def _refused(status: str):
    def handle(req, resp, error, params) -> None:
        req.context.error = str(error)
        _answer(req, resp, status, str(error))

    return handle


def _answer(req: falcon.Request, resp: falcon.Response, status: str, why: str) -> None:
    """A request document's refusal in XML, the protocol's format; a read's as negotiated."""
    resp.status = status
    resp.content_type = negotiated(req) if req.method == "GET" else XML
    resp.media = Failed(why)
