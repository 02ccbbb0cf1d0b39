"""What a client may conclude when a part it needs fails: every such text, in one table.

A request, or one item of it, that fails for want of the database, of time,
or of the web service behind the shim, is answered with one of these texts,
and each says which of two kinds of failure it is:

- *not applied*: the request never reached a place where it could act (no
  connection, a refused one, a deadline passed before it ran, a transaction
  rolled back). Sending it again is safe.
- *outcome unknown*: it may have been applied. The connection broke, or the
  deadline passed, after the request or its COMMIT was sent and before the
  answer came. The client must find out (`<query>`, `<orders/>`) before it
  sends the request again, or send it again with the same idempotency key
  (SPEC §9), which runs it at most once.

Refusals are not in this table: a malformed document, an invalid value, an
exchange rule (`insufficient funds`), authentication or a rate limit are
answers, and a refused request never ran. Their texts are SPEC's.

Both transports use these texts: the web tier per item or for a whole
document (HTTP 503), the shim for the service it cannot reach.
"""

from enum import Enum


class Outcome(Enum):
    NOT_APPLIED = "not applied"
    UNKNOWN = "outcome unknown, it may have been applied"


class Unavailable(Enum):
    """Every text of a failure for want of a part; `{why}` is the shim's detail."""

    DATABASE = f"database unavailable: {Outcome.NOT_APPLIED.value}"
    DATABASE_AFTER_COMMIT = f"database unavailable: {Outcome.UNKNOWN.value}"
    DEADLINE = f"deadline passed: {Outcome.NOT_APPLIED.value}"
    DEADLINE_AFTER_COMMIT = f"deadline passed: {Outcome.UNKNOWN.value}"
    SERVICE = f"service unavailable: {Outcome.NOT_APPLIED.value} ({{why}})"
    SERVICE_AFTER_SENDING = f"service unavailable: {Outcome.UNKNOWN.value} ({{why}})"

    @property
    def outcome(self) -> Outcome:
        return Outcome.UNKNOWN if Outcome.UNKNOWN.value in self.value else Outcome.NOT_APPLIED

    def text(self, why: str = "") -> str:
        return self.value.format(why=why)


def outcome_of(text: str | None) -> Outcome | None:
    """The kind of failure a reply's error text states; None for any other text."""
    for failure in Unavailable:
        prefix = failure.value.split("{")[0]
        if text is not None and text.startswith(prefix):
            return failure.outcome
    return None
