"""The gate every request but the public reads passes when authentication is on (SPEC §8).

It finds the request's proof (the `Authorization` header, or the `exch-auth`
prefix of its body) and checks its time and signature in memory, so that a
forged proof never reaches the database and a key that exists costs what
one that does not costs. What a key may do is read once per process. The
nonce is recorded by the request's first transaction (`Pass`): a replayed
or revoked proof then fails there, and nothing of that transaction runs.
Every failure raises the same AuthenticationFailed; its `cause` is for the
logs and metrics only.

With authentication off it checks nothing, and takes a well-formed prefix
off the body, so that a client signing its requests is served either way.
"""

import datetime
import hmac
import threading
import time
from collections.abc import Callable

from app.auth.keys import Key
from app.auth.proof import (
    PREFIX,
    PREFIX_METHOD,
    PREFIX_TARGET,
    MalformedProof,
    Proof,
    parse_header,
    signature,
)
from app.auth.refusals import AuthenticationFailed
from app.auth.secret import key_secret
from app.auth.store import KeyStore
from app.protocol.prefixes import take_prefix
from app.storage.session import Ahead, ahead_of_the_next_message

PURGE_EVERY_S = 10.0  # how often a worker forgets expired nonces
KNOWN_KEYS_LIMIT = 100_000  # keys remembered per process


class Pass:
    """An admitted request: its key (None with authentication off) and its document without
    the prefix. While inside, the request's messages to the database carry its nonce
    until one of its transactions commits; a request that committed none records it on
    the way out."""

    def __init__(
        self, key: Key | None, document: bytes, admission: Ahead | None = None, store=None
    ):
        self.key = key
        self.document = document
        self._admission = admission
        self._store = store
        self._riding = None

    def __enter__(self) -> "Pass":
        if self._admission:
            self._riding = ahead_of_the_next_message(self._admission)
            self._riding.__enter__()
        return self

    def __exit__(self, *failure) -> None:
        if not self._admission:
            return
        self._riding.__exit__(*failure)
        if not self._admission.done:
            self._store.admit_alone(self._admission)


class Gate:
    """Admits requests: with a `store`, those proving a live key; without, every one."""

    def __init__(
        self,
        store: KeyStore | None = None,
        master: bytes = b"",
        skew_s: float = 30.0,
        clock: Callable[[], float] = time.time,
    ):
        self._store = store
        self._master = master
        self._skew_s = skew_s
        self._clock = clock
        self._known: dict[str, Key] = {}
        self._next_purge = 0.0
        self._purging = threading.Lock()

    @property
    def on(self) -> bool:
        return self._store is not None

    def admit(self, method: str, target: str, authorization: str | None, body: bytes) -> Pass:
        """The request's pass; `target` is the request target as sent (path, and `?` query)."""
        prefixed = take_prefix(body, PREFIX)
        if not self.on:
            return Pass(None, prefixed[1] if prefixed and prefixed[0] is not None else body)
        if prefixed is not None:
            if authorization is not None:
                raise AuthenticationFailed("malformed")  # two proofs: which one counts?
            fields, body = prefixed
            proof = _proof(lambda: Proof.from_fields(fields or {}))
            method, target = PREFIX_METHOD, PREFIX_TARGET
        elif authorization is not None:
            proof = _proof(lambda: parse_header(authorization))
        else:
            raise AuthenticationFailed("missing")
        key = self._check(proof, method, target, body)
        until = datetime.datetime.fromtimestamp(proof.ts + self._skew_s, datetime.UTC)
        return Pass(key, body, self._store.admission(key, proof.nonce, until), self._store)

    def _check(self, proof: Proof, method: str, target: str, body: bytes) -> Key:
        now = self._clock()
        if abs(now - proof.ts) > self._skew_s:
            raise AuthenticationFailed("stale")
        secret = key_secret(self._master, proof.key)
        expected = signature(secret, proof.ts, proof.nonce, method, target, body)
        if not hmac.compare_digest(expected, proof.sig):
            raise AuthenticationFailed("bad_signature")  # an unknown key's too: same work
        self._purge_now_and_then(now)
        return self._key(proof.key)

    def _key(self, key_id: str) -> Key:
        """What the key may do, remembered: only its revocation ever changes, and recording
        the nonce refuses a revoked key anyway."""
        known = self._known.get(key_id)
        if known is None:
            known = self._store.key(key_id)
            if len(self._known) >= KNOWN_KEYS_LIMIT:
                self._known.clear()
            self._known[key_id] = known
        return known

    def _purge_now_and_then(self, now: float) -> None:
        """One worker's requests purge expired nonces every PURGE_EVERY_S; never two at once."""
        if now < self._next_purge or not self._purging.acquire(blocking=False):
            return
        try:
            self._next_purge = now + PURGE_EVERY_S
            self._store.purge_nonces()
        finally:
            self._purging.release()


def _proof(read: Callable[[], Proof]) -> Proof:
    try:
        return read()
    except MalformedProof:
        raise AuthenticationFailed("malformed") from None
