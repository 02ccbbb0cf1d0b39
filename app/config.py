"""Settings of the web tier, read from the environment once, at the edge."""

import os
from dataclasses import dataclass

from app.storage.cluster import Cluster


@dataclass(frozen=True)
class Config:
    database_url: str
    max_body_bytes: int = 1 << 20
    pool_size: int = 4
    max_attempts: int = 5

    @classmethod
    def from_env(cls, environ=os.environ) -> "Config":
        return cls(
            database_url=environ.get("DATABASE_URL") or Cluster.from_env(environ).url(),
            max_body_bytes=int(environ.get("EXCHANGE_MAX_BODY_BYTES", cls.max_body_bytes)),
            pool_size=int(environ.get("EXCHANGE_DB_POOL_SIZE", cls.pool_size)),
            max_attempts=int(environ.get("EXCHANGE_DB_ATTEMPTS", cls.max_attempts)),
        )
