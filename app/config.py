"""Settings of the web tier, read from the environment once, at the edge."""

import os
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from app.auth.secret import master_secret
from app.local.cluster import Cluster

SWITCH = {"on": True, "1": True, "true": True, "yes": True}
SWITCH |= {"off": False, "0": False, "false": False, "no": False, "": False}


def web_workers(environ=os.environ) -> int:
    """gunicorn's worker processes: one per core unless EXCHANGE_WORKERS says."""
    return int(environ.get("EXCHANGE_WORKERS") or os.cpu_count() or 1)


def request_slots(environ=os.environ) -> int:
    """Requests one worker runs at once (EXCHANGE_CONCURRENCY): its slots."""
    return int(environ.get("EXCHANGE_CONCURRENCY") or 4)


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
    auth: bool = False  # SPEC §8: proofs of a key needed (then auth_secret is the master)
    auth_secret: bytes = field(default=b"", repr=False)  # never in a log line
    auth_skew_s: float = 30.0
    rate_limit: Decimal = Decimal(0)  # requests per key per second; 0: no limit
    rate_burst: Decimal = Decimal(0)  # requests at once; 0: as many as the rate
    max_open_orders: int = 0  # per account; 0: no limit
    idempotency_lease_seconds: float = 5.0
    idempotency_keep_hours: float = 24.0
    drain_seconds: float = 0.0
    max_streams: int = 800
    stream_poll_s: float = 0.5
    stream_heartbeat_s: float = 15.0
    stream_buffer_bytes: int = 1 << 20
    deadline: float = 5.0

    @classmethod
    def from_env(cls, environ=os.environ) -> "Config":
        """Raises ValueError (a SecretError among them) naming a setting that is wrong."""
        auth = switch(environ, "EXCHANGE_AUTH")
        return cls(
            database_url=database_url(environ),
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
            auth=auth,
            auth_secret=master_secret(environ) if auth else b"",
            auth_skew_s=_at_least(environ, "EXCHANGE_AUTH_SKEW", cls.auth_skew_s, 1),
            rate_limit=_at_least(environ, "EXCHANGE_RATE_LIMIT", cls.rate_limit, 0),
            rate_burst=_at_least(environ, "EXCHANGE_RATE_BURST", cls.rate_burst, 0),
            max_open_orders=int(_at_least(environ, "EXCHANGE_MAX_OPEN_ORDERS", 0, 0)),
            idempotency_lease_seconds=float(
                environ.get("EXCHANGE_IDEMPOTENCY_LEASE", cls.idempotency_lease_seconds)
            ),
            idempotency_keep_hours=float(
                environ.get("EXCHANGE_IDEMPOTENCY_KEEP_HOURS", cls.idempotency_keep_hours)
            ),
            drain_seconds=float(environ.get("EXCHANGE_DRAIN_SECONDS", cls.drain_seconds)),
            max_streams=int(environ.get("EXCHANGE_MAX_STREAMS", cls.max_streams)),
            stream_poll_s=float(environ.get("EXCHANGE_STREAM_POLL_INTERVAL", cls.stream_poll_s)),
            stream_heartbeat_s=float(
                environ.get("EXCHANGE_STREAM_HEARTBEAT", cls.stream_heartbeat_s)
            ),
            stream_buffer_bytes=int(
                environ.get("EXCHANGE_STREAM_BUFFER_BYTES", cls.stream_buffer_bytes)
            ),
            deadline=float(environ.get("EXCHANGE_DEADLINE", cls.deadline)),
        )


def database_url(environ) -> str:
    """`DATABASE_URL`, or the local cluster of `make run`."""
    return environ.get("DATABASE_URL") or Cluster.from_env(environ).url()


def switch(environ, name: str) -> bool:
    """An on/off setting; anything but the usual words is refused, never guessed."""
    value = environ.get(name, "")
    if value.strip().lower() not in SWITCH:
        raise ValueError(f"{name} must be on or off, not {value!r}")
    return SWITCH[value.strip().lower()]


def _at_least(environ, name: str, default, least):
    """A number setting of `default`'s type (an int, a float, a Decimal) no smaller than `least`."""
    value = environ.get(name)
    if not value:
        return default
    try:
        number = type(default)(value)
    except (ValueError, InvalidOperation):
        raise ValueError(f"{name} must be a number, not {value!r}") from None
    if not number >= least:
        raise ValueError(f"{name} must be at least {least}, not {value}")
    return number
