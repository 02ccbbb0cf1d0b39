"""Falcon resources: read the body, make one domain call, write the reply."""

import logging

import falcon
from lxml import etree
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from app import deadline
from app.exchange.service import answer, database_failed, perform
from app.exchange.transactions import Exchange
from app.protocol import DocumentTooLarge, parse_read, parse_request, render_results
from app.protocol.numbers import account_id
from app.web.media import XML, negotiated

log = logging.getLogger(__name__)

READINESS_S = 1.0  # readiness answers within this, 503 when the database does not


class RequestsResource:
    """`POST /`: a `<create>` or `<transactions>` document in, `<results>` out."""

    def __init__(self, exchange: Exchange, max_body_bytes: int):
        self._exchange = exchange
        self._max_body_bytes = max_body_bytes

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.kind = "unparsed"
        request = parse_request(self._read_body(req), self._max_body_bytes)
        req.context.kind = request.kind
        req.context.account = request.acting_account
        replies = req.context.replies = answer(self._exchange, request)
        resp.content_type = XML
        resp.data = render_results(replies)
        if replies and all(database_failed(result) for _, result in replies):
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
    a malformed parameter raise, answered by the app's error handlers.
    """

    def __init__(self, exchange: Exchange, kind: str, query: tuple[str, ...] = ()):
        self._exchange = exchange
        self._kind = kind
        self._query = query

    def on_get(self, req: falcon.Request, resp: falcon.Response, **path: str) -> None:
        req.context.kind = self._kind
        req.context.account = path.get("id")
        resp.content_type = negotiated(req)
        query = {name: req.get_param(name, allow_multiple=False) for name in self._query}
        account = account_id(path["id"], "account id") if "id" in path else None
        report = perform(self._exchange, parse_read(self._kind, query | path, account))
        req.context.replies = [((), report)]
        resp.media = report


class LivenessResource:
    """`GET /livez`: 200 while the process serves requests; it asks the database nothing."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = XML
        resp.data = _health(live="ok")


class ReadinessResource:
    """`GET /readyz` (and `/health`): 200 when the database answers and has the schema, else 503.

    It answers within READINESS_S even when the database hangs: the deadline
    ends the wait, and the exchange it asks has a connection of its own. A
    failing database is this endpoint's expected answer, not an error of the
    request, so it is logged at debug only: the requests themselves log it.
    """

    def __init__(self, exchange: Exchange):
        self._exchange = exchange

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
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
