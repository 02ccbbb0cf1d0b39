"""One log line and the metrics of every request document and every read, whatever its outcome.

The line is `key=value` pairs (logfmt), at info level; bad input (4xx),
requests refused for want of the database (503) and requests slower than
the threshold are logged at warning (the outage itself is logged once, by
DatabaseOutage):

    request kind=transactions account=123 items=2 failed=1 status=200 outcome=ok ms=8.4
"""

import json
import logging
import time

import falcon

from app.exchange.results import Failed, Result
from app.exchange.service import database_failed
from app.web import metrics
from app.web.outage import DatabaseOutage

log = logging.getLogger("app.web.requests")

OUTCOMES = {
    200: "ok",
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    409: "in_progress",
    413: "too_large",
    422: "key_reused",
    429: "rate_limited",
    503: "unavailable",
}


class RequestObserver:
    """Falcon middleware; the requests and report resources fill `req.context` as they go."""

    def __init__(self, counters: metrics.ExchangeCounters, slow_ms: float, outage: DatabaseOutage):
        self._counters = counters
        self._slow_ms = slow_ms
        self._outage = outage

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.started = time.perf_counter()

    def process_response(self, req, resp, resource, req_succeeded: bool) -> None:
        kind = req.context.get("kind")
        if kind is None:  # neither a request document nor a read: health, metrics, unknown paths
            return
        seconds = time.perf_counter() - req.context.started
        status = resp.status_code
        results = [result for _, result in req.context.get("replies", ())]
        outcome = self._outcome(req, status, results)
        metrics.record_request(kind, outcome, seconds, results)
        self._counters.export()

        slow = seconds * 1000 >= self._slow_ms
        level = _level(status, slow)
        if not log.isEnabledFor(level):  # a line not written is not worth formatting
            return
        key = req.context.get("key")
        fields = {
            "kind": kind,
            "account": req.context.get("account") or "-",
            **({"key": key.id} if key else {}),
            "items": len(results),
            "failed": sum(isinstance(result, Failed) for result in results),
            "status": status,
            "outcome": outcome,
            "ms": f"{seconds * 1000:.1f}",
        }
        if slow:
            fields["slow"] = "true"
        if "error" in req.context:
            fields["error"] = req.context.error
        log.log(level, "request %s", logfmt(fields))

    def _outcome(self, req: falcon.Request, status: int, results: list[Result]) -> str:
        """The request's outcome for the metrics and the log; the database's state with it.

        An error handler may have named it already (a stream refused: `refused`).
        """
        if "outcome" in req.context:
            return req.context.outcome
        failed_for_database = [result for result in results if database_failed(result)]
        if status == 503 or failed_for_database:
            cause = req.context.get("database_error") or failed_for_database[0].cause
            self._outage.request_failed(cause or "no cause given")
        elif status == 200 and results:
            self._outage.request_served()
        if status == 200 and failed_for_database:
            return "partly_unavailable"
        if req.context.get("replayed"):
            return "replayed"
        return OUTCOMES.get(status, str(status))


def _level(status: int, slow: bool) -> int:
    """A database outage is logged by DatabaseOutage, once; its requests are warnings. A
    failed proof is warned about, rate-limited, where it is answered (app/web/authentication.py)."""
    if status >= 500 and status != 503:
        return logging.ERROR
    return logging.WARNING if slow or (status >= 400 and status != 401) else logging.INFO


def logfmt(fields: dict) -> str:
    """`key=value` pairs; a value with spaces, quotes, `=` or control characters is JSON."""
    return " ".join(f"{key}={_value(str(value))}" for key, value in fields.items())


def _value(text: str) -> str:
    if text and text.isprintable() and not any(char in text for char in ' "=\\'):
        return text
    return json.dumps(text, ensure_ascii=False)
