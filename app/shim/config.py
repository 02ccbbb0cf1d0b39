"""Settings of the legacy TCP shim, read from the environment once, at the edge."""

import os
from dataclasses import dataclass

from app.config import Config

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
POSITIVE = ("idle_timeout", "upstream_timeout", "concurrency", "max_connections", "max_body_bytes")


@dataclass(frozen=True)
class ShimConfig:
    host: str = "0.0.0.0"
    port: int = 12345
    upstream: str = "http://127.0.0.1:8000/"
    reply_length: bool = False
    keep_open: bool = False
    idle_timeout: float = 10.0
    upstream_timeout: float = 30.0
    concurrency: int = 64
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
        def setting(name: str, default, parse=str):
            value = environ.get(name)
            return default if value is None or value == "" else parse(value)

        return cls(
            host=setting("EXCHANGE_SHIM_HOST", cls.host),
            port=setting("EXCHANGE_SHIM_PORT", cls.port, int),
            upstream=setting("EXCHANGE_SHIM_UPSTREAM", cls.upstream),
            reply_length=setting("EXCHANGE_SHIM_REPLY_LENGTH", cls.reply_length, parse_flag),
            keep_open=setting("EXCHANGE_SHIM_KEEP_OPEN", cls.keep_open, parse_flag),
            idle_timeout=setting("EXCHANGE_SHIM_IDLE_TIMEOUT", cls.idle_timeout, float),
            upstream_timeout=setting("EXCHANGE_SHIM_UPSTREAM_TIMEOUT", cls.upstream_timeout, float),
            concurrency=setting("EXCHANGE_SHIM_CONCURRENCY", cls.concurrency, int),
            max_connections=setting("EXCHANGE_SHIM_MAX_CONNECTIONS", cls.max_connections, int),
            max_body_bytes=setting("EXCHANGE_MAX_BODY_BYTES", cls.max_body_bytes, int),
        )


def parse_flag(value: str) -> bool:
    return value.strip().lower() in TRUE_WORDS
