"""A key as the service acts on it: whose it is, and what it may do (SPEC §8)."""

from dataclasses import dataclass

ADMIN, TRADE, READ = "admin", "trade", "read"


@dataclass(frozen=True)
class Key:
    id: str
    account_id: str | None  # None for an admin key
    permissions: frozenset[str]
