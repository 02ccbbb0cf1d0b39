"""Answer a request document once per key, however often it is sent (SPEC §9).

The first attempt claims the key with its first child that commits an effect,
in that child's transaction, and runs; a request that committed nothing (reads,
refusals) claims it with its reply. A repeat gets the first reply byte for
byte: kept whole, or rebuilt from the children's records when every child left
one. A repeat while the first runs is refused (409), as is another document
under the same key (422). An attempt cut off part-way (its host died, or hung
past its lease) leaves its committed children recorded: the repeat that takes
the claim over answers those from their records and runs the rest.
"""

from dataclasses import dataclass

from sqlalchemy.exc import DBAPIError

from app.exchange.commands import Echo, Request
from app.exchange.results import Result
from app.exchange.service import answer, completing_child, database_failed, rebuilt
from app.exchange.transactions import Exchange
from app.idempotency.claims import Claim, KeyReused, KeyTaken, RequestInProgress
from app.idempotency.keys import fingerprint
from app.protocol import parse_request, render_results

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
        completing = completing_child(request)
        claim = Claim(scope, key, self._lease_seconds, fingerprint(document), completing)
        try:
            return self._run(request, claim)
        except KeyTaken:  # nothing committed: answer as a repeat
            return self._repeat(request, claim, document)

    def _run(self, request: Request, claim: Claim) -> Reply:
        """Run the request under the claim, then keep its reply unless its records are it."""
        exchange = self._exchange
        results = answer(exchange, request, claim)
        reply = Reply(render_results(results), results)
        if claim.answered:
            return reply
        # Some items may not have run for want of the database: then nothing is kept, and
        # a repeat runs them, without waiting for the lease.
        unavailable = any(database_failed(result) for _, result in results)
        try:
            if not claim.taken:
                if not unavailable:
                    exchange.claim_answered(claim, reply.body)
            elif unavailable:
                exchange.release_claim(claim.scope, claim.key, claim.attempt)
            else:
                exchange.record_reply(claim.scope, claim.key, claim.attempt, reply.body)
        except DBAPIError:  # the client still gets its reply; a repeat finds what committed
            pass
        return reply

    def _repeat(self, request: Request, claim: Claim, document: bytes) -> Reply:
        """The key is claimed: take the claim over when left unanswered with its lease
        run out, else replay its reply, or refuse (in progress, another document)."""
        exchange = self._exchange
        scope, key, lease_seconds = claim.scope, claim.key, claim.lease_seconds
        attempts = exchange.claim_request(
            scope, key, claim.fingerprint, claim.attempt, lease_seconds
        )
        if attempts is None:
            return self._replay(claim, document)
        recorded = exchange.recorded_children(scope, key) if attempts > 1 else {}
        taken = Claim(
            scope,
            key,
            lease_seconds,
            claim.fingerprint,
            completing_child(request),
            taken=True,
            attempt=claim.attempt,  # the claim's, now
            recorded=recorded,
        )
        return self._run(request, taken)

    def _replay(self, claim: Claim, document: bytes) -> Reply:
        """The first reply, kept or rebuilt; raises when there is none to give."""
        exchange = self._exchange
        found = exchange.request_claim(claim.scope, claim.key, claim.fingerprint)
        if not found.same_document:
            raise KeyReused()
        if not found.answered:
            raise RequestInProgress()
        if found.reply is not None:
            return Reply(found.reply, [], replayed=True)
        # Every child had an effect and left a record. The document as sent has them
        # all, whatever the key sending it again may run.
        first = parse_request(document, len(document))
        records = exchange.recorded_children(claim.scope, claim.key)
        return Reply(render_results(rebuilt(exchange, first, records)), [], replayed=True)


def _scope(request: Request) -> str | None:
    """The key's scope: the acting account, or every <create>. None for a request whose
    items all fail whatever happens (a malformed acting account): its reply never changes."""
    if request.kind == "create":
        return CREATE_SCOPE
    return request.acting_account
