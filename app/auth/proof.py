"""A proof of a key (SPEC §8): the string its signature covers, and the two ways it travels.

Shared by the service, which verifies proofs, and the client, which makes
them: both must build the very same bytes. Over HTTP a proof is the header

    Authorization: EXCH1-HMAC-SHA256 key=K, ts=T, nonce=N, sig=S

and in the legacy protocol (or an HTTP body) the prefix
`<?exch-auth key="K" ts="T" nonce="N" sig="S"?>`, whose signed body is
everything after it, as a `POST` to `/`.
"""

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

SCHEME = "EXCH1-HMAC-SHA256"
PREFIX = "exch-auth"
PREFIX_METHOD, PREFIX_TARGET = "POST", "/"
FIELDS = ("key", "ts", "nonce", "sig")
KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
NONCE = re.compile(r"[A-Za-z0-9_-]{8,64}")
TIMESTAMP = re.compile(r"[0-9]{1,12}")
SIGNATURE = re.compile(r"[0-9a-f]{64}")


class MalformedProof(ValueError):
    """A proof that cannot even be read: a field missing, repeated, unknown or ill-formed."""


@dataclass(frozen=True)
class Proof:
    key: str
    ts: int
    nonce: str
    sig: str

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> "Proof":
        if set(fields) != set(FIELDS):
            raise MalformedProof(f"fields {sorted(fields)}, not {list(FIELDS)}")
        for name, pattern in zip(FIELDS, (KEY_ID, TIMESTAMP, NONCE, SIGNATURE), strict=True):
            if not pattern.fullmatch(fields[name]):
                raise MalformedProof(f"malformed {name}")
        return cls(fields["key"], int(fields["ts"]), fields["nonce"], fields["sig"])

    def header(self) -> str:
        return f"{SCHEME} key={self.key}, ts={self.ts}, nonce={self.nonce}, sig={self.sig}"

    def prefix(self) -> bytes:
        fields = " ".join(f'{name}="{value}"' for name, value in self._fields())
        return f"<?{PREFIX} {fields}?>".encode("ascii")

    def _fields(self) -> tuple[tuple[str, object], ...]:
        return (("key", self.key), ("ts", self.ts), ("nonce", self.nonce), ("sig", self.sig))


def parse_header(value: str) -> Proof:
    """The proof in an `Authorization` header; the scheme's name is case-insensitive (RFC 9110)."""
    scheme, _, parameters = value.strip().partition(" ")
    if scheme.upper() != SCHEME:
        raise MalformedProof("another scheme")
    fields: dict[str, str] = {}
    for parameter in parameters.split(","):
        name, equals, field = parameter.strip().partition("=")
        if not equals or name in fields:
            raise MalformedProof("a parameter without a value, or given twice")
        fields[name] = field
    return Proof.from_fields(fields)


def string_to_sign(ts: int, nonce: str, method: str, target: str, body: bytes) -> bytes:
    digest = hashlib.sha256(body).hexdigest()
    return f"EXCH1\n{ts}\n{nonce}\n{method.upper()}\n{target}\n{digest}".encode()


def signature(secret: str, ts: int, nonce: str, method: str, target: str, body: bytes) -> str:
    """The lowercase hex HMAC-SHA256 of the string to sign, keyed with the secret's UTF-8 bytes."""
    message = string_to_sign(ts, nonce, method, target, body)
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(
    key: str,
    secret: str,
    method: str,
    target: str,
    body: bytes,
    clock: Callable[[], float] = time.time,
) -> Proof:
    """A fresh proof for one request: the time now and a random nonce."""
    ts, nonce = int(clock()), secrets.token_urlsafe(16)
    return Proof(key, ts, nonce, signature(secret, ts, nonce, method, target, body))


@dataclass(frozen=True)
class Credentials:
    """What a client signs its requests with: a key and its secret."""

    key: str
    secret: str = field(repr=False)

    def header(self, method: str, target: str, body: bytes = b"") -> str:
        """The `Authorization` header of one HTTP request."""
        return sign(self.key, self.secret, method, target, body).header()

    def prefixed(self, document: bytes) -> bytes:
        """The document behind the prefix that proves the key, as the legacy protocol carries it."""
        return (
            sign(self.key, self.secret, PREFIX_METHOD, PREFIX_TARGET, document).prefix() + document
        )
