"""Falcon resources: read the body, make one domain call, write the reply."""

import contextlib
import logging

import falcon
from lxml import etree
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from app import deadline
from app.auth.gate import Gate
from app.auth.permissions import authorize, authorize_account
from app.exchange.service import perform
from app.exchange.transactions import Exchange
from app.idempotency.keys import HEADER, request_key
from app.idempotency.requests import Requests
from app.protocol import DocumentTooLarge, parse_read, parse_request
from app.protocol.numbers import account_id
from app.web.authentication import proven
from app.web.draining import draining
from app.web.media import XML, negotiated

log = logging.getLogger(__name__)

REPLAYED_HEADER = "Idempotent-Replayed"
READINESS_S = 1.0  # readiness answers within this, 503 when the database does not


class RequestsResource:
    """`POST /`: a `<create>` or `<transactions>` document in, `<results>` out; once per
    idempotency key when it carries one (the header, or the prefix of the body). With
    authentication on, the key the request proves runs only what it may.
    """

    def __init__(self, requests: Requests, gate: Gate, max_body_bytes: int):
        self._requests = requests
        self._gate = gate
        self._max_body_bytes = max_body_bytes

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.kind = "unparsed"
        with proven(self._gate, req, self._read_body(req)) as admitted:
            key, document = request_key(req.get_header(HEADER), admitted.document)
            request = authorize(admitted.key, parse_request(document, self._max_body_bytes))
            req.context.kind = request.kind
            req.context.account = request.acting_account
            reply = self._requests.answer(request, key, document)
            req.context.replies = reply.results
        resp.content_type = XML
        resp.data = reply.body
        if reply.replayed:
            req.context.replayed = True
            resp.set_header(REPLAYED_HEADER, "true")
        if reply.unavailable:
            # Nothing was done for want of the database, as when it fails
            # before any item: clients and proxies see the outage in the status.
            resp.status = falcon.HTTP_503

    def _read_body(self, req: falcon.Request) -> bytes:
        """Read at most one byte past the limit, whether the length is declared or chunked."""
        limit = self._max_body_bytes
        if req.content_length is not None:
            if req.content_length > limit:
                raise DocumentTooLarge(limit)
            return req.bounded_stream.read()
        return req.stream.read(limit + 1)


class ReportResource:
    """`GET` of a read (SPEC §7): path and query parameters in, its report out.

    Parameters are named and validated as the XML attributes are; one given
    twice is refused, not guessed. A refusal (unknown symbol or account) and
    a malformed parameter raise, answered by the app's error handlers. An
    account's reads pass the `gate`; market data is public.
    """

    def __init__(
        self, exchange: Exchange, kind: str, query: tuple[str, ...] = (), gate: Gate | None = None
    ):
        self._exchange = exchange
        self._kind = kind
        self._query = query
        self._gate = gate

    def on_get(self, req: falcon.Request, resp: falcon.Response, **path: str) -> None:
        req.context.kind = self._kind
        req.context.account = path.get("id")
        resp.content_type = negotiated(req)
        query = {name: req.get_param(name, allow_multiple=False) for name in self._query}
        with proven(self._gate, req) if self._gate else contextlib.nullcontext() as admitted:
            if admitted:
                authorize_account(admitted.key, path["id"])
            account = account_id(path["id"], "account id") if "id" in path else None
            report = perform(self._exchange, parse_read(self._kind, query | path, account))
        req.context.replies = [((), report)]
        resp.media = report


class QuotesResource:
    """`GET /symbols`: every symbol with its last trade's price and time (SPEC §10), XML or JSON."""

    def __init__(self, exchange: Exchange):
        self._exchange = exchange

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.kind = "symbols"
        resp.content_type = negotiated(req)
        report = self._exchange.quotes()
        req.context.replies = [((), report)]
        resp.media = report


class LivenessResource:
    """`GET /livez`: 200 while the process serves requests; it asks the database nothing."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = XML
        resp.data = _health(live="ok")


class ReadinessResource:
    """`GET /readyz` (and `/health`): 200 when the database answers and has the schema, else
    503; 503 too while the instance drains before stopping.

    It answers within READINESS_S even when the database hangs: the deadline
    ends the wait, and the exchange it asks has a connection of its own. A
    failing database is this endpoint's expected answer, not an error of the
    request, so it is logged at debug only: the requests themselves log it.
    """

    def __init__(self, exchange: Exchange):
        self._exchange = exchange

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if draining():  # stopping: balancers take the instance out (app/web/draining.py)
            resp.status = falcon.HTTP_503
            resp.content_type = XML
            resp.data = _health(draining="yes")
            return
        try:
            with deadline.within(READINESS_S):
                missing = self._exchange.missing_tables()
        except (DBAPIError, PoolTimeout) as error:
            log.debug("not ready: %s", error)
            resp.status = falcon.HTTP_503
            resp.content_type = XML
            resp.data = _health(database="unavailable")
            return
        resp.status = falcon.HTTP_503 if missing else falcon.HTTP_200
        resp.content_type = XML
        resp.data = _health(database="ok", schema="missing" if missing else "ok")


def _health(**checks: str) -> bytes:
    return etree.tostring(etree.Element("health", checks), xml_declaration=True, encoding="UTF-8")
