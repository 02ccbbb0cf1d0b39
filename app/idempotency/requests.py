"""Answer a request document once per key, however often it is sent (SPEC §9).

The first attempt claims the key and runs; its reply is kept and a repeat gets
it byte for byte. A repeat while it runs is refused (409), as is another
document under the same key (422). An attempt cut off part-way (its host died,
or hung past its lease) leaves its committed children recorded: the repeat
that takes the claim over answers those from their records and runs the rest.
"""

from dataclasses import dataclass

from sqlalchemy.exc import DBAPIError

from app.exchange.commands import Echo, Request
from app.exchange.results import Result
from app.exchange.service import answer, database_failed
from app.exchange.transactions import Exchange
from app.idempotency.claims import Claim, KeyReused, RequestInProgress
from app.idempotency.keys import fingerprint
from app.protocol import render_results

CREATE_SCOPE = "create"  # every <create> request shares one scope; account ids are digits


@dataclass(frozen=True, slots=True)
class Reply:
    """The reply's bytes; its items' results when it ran (none for a replay)."""

    body: bytes
    results: list[tuple[Echo, Result]]
    replayed: bool = False

    @property
    def unavailable(self) -> bool:
        """Nothing was done for want of the database: every item failed for it."""
        return bool(self.results) and all(database_failed(result) for _, result in self.results)


class Requests:
    """Answers request documents, once per idempotency key when they carry one."""

    def __init__(self, exchange: Exchange, lease_seconds: float = 5.0):
        self._exchange = exchange
        self._lease_seconds = lease_seconds

    def answer(self, request: Request, key: str | None = None, document: bytes = b"") -> Reply:
        scope = _scope(request)
        if key is None or scope is None:
            results = answer(self._exchange, request)
            return Reply(render_results(results), results)
        exchange = self._exchange
        claim = Claim(scope, key, self._lease_seconds)
        document_print = fingerprint(document)
        attempts = exchange.claim_request(
            scope, key, document_print, claim.attempt, claim.lease_seconds
        )
        if attempts is None:
            same_document, reply = exchange.request_claim(scope, key, document_print)
            if not same_document:
                raise KeyReused()
            if reply is None:
                raise RequestInProgress()
            return Reply(reply, [], replayed=True)
        if attempts > 1:
            claim.recorded = exchange.recorded_children(scope, key)
        results = answer(exchange, request, claim)
        reply = Reply(render_results(results), results)
        try:
            if any(database_failed(result) for _, result in results):
                # Some items may not have run: a repeat runs them without waiting for the lease.
                exchange.release_claim(scope, key, claim.attempt)
            else:
                exchange.record_reply(scope, key, claim.attempt, reply.body)
        except DBAPIError:  # the client still gets its reply; a repeat answers from the records
            pass
        return reply


def _scope(request: Request) -> str | None:
    """The key's scope: the acting account, or every <create>. None for a request whose
    items all fail whatever happens (a malformed acting account): its reply never changes."""
    if request.kind == "create":
        return CREATE_SCOPE
    return request.acting_account
