"""Settings of the legacy TCP shim, read from the environment once, at the edge."""

import os
from dataclasses import dataclass, fields

from app.config import SWITCH, Config, request_slots, web_workers

POSITIVE = ("idle_timeout", "upstream_timeout", "concurrency", "max_connections", "max_body_bytes")


@dataclass(frozen=True)
class ShimConfig:
    host: str = "127.0.0.1"  # SPEC §8: loopback unless configured
    port: int = 12345
    upstream: str = "http://127.0.0.1:8000/"
    reply_length: bool = False
    keep_open: bool = False
    idle_timeout: float = 10.0
    upstream_timeout: float = 30.0
    concurrency: int = 8  # from_env: the service's slots, see `service_slots`
    max_connections: int = 1024
    max_body_bytes: int = Config.max_body_bytes

    def __post_init__(self):
        for name in POSITIVE:
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, not {getattr(self, name)}")
        if not 0 <= self.port < 65536:
            raise ValueError(f"port must be between 0 and 65535, not {self.port}")

    @classmethod
    def from_env(cls, environ=os.environ) -> "ShimConfig":
        """Each setting from its variable of `SETTINGS`; unset or empty keeps the default."""
        values = {"concurrency": service_slots(environ)}
        for field in fields(cls):
            value = environ.get(SETTINGS[field.name].variable)
            if value:
                values[field.name] = parse_flag(value) if field.type is bool else field.type(value)
        return cls(**values)


def service_slots(environ=os.environ) -> int:
    """The shim's default concurrency: as many requests as the service beside it runs at once.

    More would only queue in the service's workers, and each worker's queue
    grows with the share of the shim's pooled connections the kernel happened
    to give it (22 and 10 of 32, say): the clients of the crowded worker wait
    twice as long. Kept to the service's slots, the queue forms in the shim,
    where requests wait in arrival order for the next free connection."""
    return web_workers(environ) * request_slots(environ)


@dataclass(frozen=True)
class Setting:
    variable: str
    meaning: str


# Every field of ShimConfig: its environment variable, and what it means (the
# flags of `python -m app.shim` are made from this table too).
SETTINGS = {
    "host": Setting("EXCHANGE_SHIM_HOST", "address to listen on"),
    "port": Setting("EXCHANGE_SHIM_PORT", "port to listen on"),
    "upstream": Setting("EXCHANGE_SHIM_UPSTREAM", "URL of the HTTP service"),
    "reply_length": Setting("EXCHANGE_SHIM_REPLY_LENGTH", "prefix each reply with its length line"),
    "keep_open": Setting("EXCHANGE_SHIM_KEEP_OPEN", "keep connections open for further requests"),
    "idle_timeout": Setting(
        "EXCHANGE_SHIM_IDLE_TIMEOUT", "seconds without progress before giving up on a client"
    ),
    "upstream_timeout": Setting(
        "EXCHANGE_SHIM_UPSTREAM_TIMEOUT", "seconds to wait for the service's reply"
    ),
    "concurrency": Setting("EXCHANGE_SHIM_CONCURRENCY", "requests forwarded at once"),
    "max_connections": Setting(
        "EXCHANGE_SHIM_MAX_CONNECTIONS", "client connections served at once"
    ),
    "max_body_bytes": Setting("EXCHANGE_MAX_BODY_BYTES", "largest request accepted"),
}


def parse_flag(value: str) -> bool:
    """On for the words `switch` takes as on (app/config.py); anything else is off."""
    return SWITCH.get(value.strip().lower(), False)
