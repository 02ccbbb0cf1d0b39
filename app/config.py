"""Settings of the web tier, read from the environment once, at the edge."""

import os
from dataclasses import dataclass

from app.local.cluster import Cluster


@dataclass(frozen=True)
class Config:
    database_url: str
    max_body_bytes: int = 1 << 20
    pool_size: int = 4
    max_attempts: int = 5
    slow_ms: float = 1000.0
    db_wait_seconds: float = 30.0
    request_timeout: float = 10.0
    max_connections: int = 1000
    max_connections_per_client: int = 500
    read_concurrency: int = 2
    deadline: float = 5.0

    @classmethod
    def from_env(cls, environ=os.environ) -> "Config":
        return cls(
            database_url=environ.get("DATABASE_URL") or Cluster.from_env(environ).url(),
            max_body_bytes=int(environ.get("EXCHANGE_MAX_BODY_BYTES", cls.max_body_bytes)),
            pool_size=int(environ.get("EXCHANGE_DB_POOL_SIZE", cls.pool_size)),
            max_attempts=int(environ.get("EXCHANGE_DB_ATTEMPTS", cls.max_attempts)),
            slow_ms=float(environ.get("EXCHANGE_SLOW_MS", cls.slow_ms)),
            db_wait_seconds=float(environ.get("EXCHANGE_DB_WAIT_SECONDS", cls.db_wait_seconds)),
            request_timeout=float(environ.get("EXCHANGE_REQUEST_TIMEOUT", cls.request_timeout)),
            max_connections=int(environ.get("EXCHANGE_MAX_CONNECTIONS", cls.max_connections)),
            max_connections_per_client=int(
                environ.get("EXCHANGE_MAX_CONNECTIONS_PER_CLIENT", cls.max_connections_per_client)
            ),
            read_concurrency=int(environ.get("EXCHANGE_READ_CONCURRENCY", cls.read_concurrency)),
            deadline=float(environ.get("EXCHANGE_DEADLINE", cls.deadline)),
        )
