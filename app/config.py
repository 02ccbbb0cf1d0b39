"""Settings of the web tier, read from the environment once, at the edge."""
import os
from dataclasses import dataclass

LOCAL_DATABASE_URL = "postgresql+psycopg2://postgres@127.0.0.1:54329/exchange"


@dataclass(frozen=True)
class Config:
    database_url: str = LOCAL_DATABASE_URL
    max_body_bytes: int = 1 << 20
    pool_size: int = 4
    max_attempts: int = 5

    @classmethod
    def from_env(cls, environ=os.environ) -> "Config":
        return cls(
            database_url=environ.get("DATABASE_URL") or LOCAL_DATABASE_URL,
            max_body_bytes=int(environ.get("EXCHANGE_MAX_BODY_BYTES", cls.max_body_bytes)),
            pool_size=int(environ.get("EXCHANGE_DB_POOL_SIZE", cls.pool_size)),
            max_attempts=int(environ.get("EXCHANGE_DB_ATTEMPTS", cls.max_attempts)),
        )
