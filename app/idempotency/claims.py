"""What an attempt at an idempotent request holds: its claim on the key, and its children's marks.

A new key is claimed by the request's first child with an effect, in that
child's own transaction (its insert rides ahead of the child's first
statement): no round trip of its own, and a claim exists only once something
committed under it. When that insert finds the key taken, this attempt has
committed nothing, and it answers as a repeat does.

A claim has a lease: a repeat finding the key claimed and the lease current is
told the request is in progress (409); once the lease has run out (the attempt
died, or its host hangs) a repeat takes the claim over. An attempt that runs
long renews its lease between children. The attempt's number fences it: every
child's record names it, so an attempt that has lost its claim cannot commit
another child (the database refuses the record, and the child with it).

When every child of a request has an effect, every child leaves a record and
the records are the reply: the last child's commit marks the request
answered (a request of one such child is claimed answered at once), and a
repeat rebuilds the reply from them. Any other reply is kept whole.
"""

import secrets
import time
from dataclasses import dataclass, field


class RequestInProgress(Exception):
    """Another attempt at the same key and document is running: answered 409."""

    def __init__(self):
        super().__init__("request in progress")


class ClaimLost(RequestInProgress):
    """This attempt's claim was taken over by a repeat, which now answers the request."""


class KeyReused(Exception):
    """The key names another document in the same scope: answered 422."""

    def __init__(self):
        super().__init__("idempotency key reused with a different request")


class KeyTaken(Exception):
    """Claiming the key found it another attempt's: this attempt committed nothing."""


@dataclass(frozen=True, slots=True)
class Child:
    """The mark of a child of a claimed request: its record goes in with its effect;
    `answers` when that record completes the request's records, which are its reply."""

    scope: str
    key: str
    attempt: int
    index: int
    answers: bool = False

    def parameters(self, order_id: int | None = None, placed: bool = False) -> dict:
        """Its record's parameters: the order it canceled (`order_id`), or, `placed`, the one
        its transaction placed, whose id is drawn by the same message."""
        return {
            "scope": self.scope,
            "key": self.key,
            "attempt": self.attempt,
            "child": self.index,
            "recorded_order_id": order_id,
            "recorded_the_order_placed": placed,
        }


@dataclass
class Claim:
    """This attempt's claim, `taken` once committed. `recorded` maps the children an
    earlier attempt committed to the order each placed or canceled (None for an
    account or shares). `completing` is the last child, while every child before it
    has left a record and the request's reply may still be its records; `answered`
    once that child's record has."""

    scope: str
    key: str
    lease_seconds: float
    fingerprint: bytes
    completing: int | None = None
    taken: bool = False
    attempt: int = field(default_factory=lambda: secrets.randbits(63))
    recorded: dict[int, int | None] = field(default_factory=dict)
    answered: bool = False
    renew_at: float = 0.0

    def __post_init__(self) -> None:
        self.leased()

    def child(self, index: int) -> Child:
        """Its mark answers the request when its record completes those of a claim already
        taken (a child that claims the key claims it answered instead)."""
        answers = self.taken and self.completes(index)
        return Child(self.scope, self.key, self.attempt, index, answers)

    def completes(self, index: int) -> bool:
        return index == self.completing

    def ran(self, index: int, recorded: bool) -> None:
        """Child `index` ran, and left a record or not."""
        if not recorded:
            self.completing = None
        elif self.completes(index):
            self.answered = True

    def leased(self) -> None:
        """The lease was (re)taken now: renew it when half of it has passed."""
        self.renew_at = time.monotonic() + self.lease_seconds / 2

    def renewal_due(self) -> bool:
        return self.taken and not self.answered and time.monotonic() >= self.renew_at
