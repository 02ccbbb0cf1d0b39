"""What an attempt at an idempotent request holds: its claim on the key, and its children's marks.

A claim has a lease: a repeat finding the key claimed and the lease current is
told the request is in progress (409); once the lease has run out (the attempt
died, or its host hangs) a repeat takes the claim over. An attempt that runs
long renews its lease between children. The attempt's number fences it: every
child's record names it, so an attempt that has lost its claim cannot commit
another child (the database refuses the record, and the child with it).
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


@dataclass(frozen=True, slots=True)
class Child:
    """The mark of a child of a claimed request: its record goes in with its effect."""

    scope: str
    key: str
    attempt: int
    index: int

    def parameters(self, order_id: int | None = None) -> dict:
        return {
            "scope": self.scope,
            "key": self.key,
            "attempt": self.attempt,
            "child": self.index,
            "recorded_order_id": order_id,
        }


@dataclass
class Claim:
    """A claim held by this attempt; `recorded` maps the children an earlier attempt
    committed to the order each placed or canceled (None for an account or shares)."""

    scope: str
    key: str
    lease_seconds: float
    attempt: int = field(default_factory=lambda: secrets.randbits(63))
    recorded: dict[int, int | None] = field(default_factory=dict)
    renew_at: float = 0.0

    def __post_init__(self) -> None:
        self.leased()

    def child(self, index: int) -> Child:
        return Child(self.scope, self.key, self.attempt, index)

    def leased(self) -> None:
        """The lease was (re)taken now: renew it when half of it has passed."""
        self.renew_at = time.monotonic() + self.lease_seconds / 2

    def renewal_due(self) -> bool:
        return time.monotonic() >= self.renew_at
