"""The service's master secret, and the secret of each key derived from it.

A key's secret is HMAC-SHA256(master, key id): the service recomputes it for
any key id it is shown, so the database stores no secret and a reader of it
cannot sign a request, and checking a proof costs the same for a key id that
exists as for one that does not. Changing the master secret changes every
key's secret: rotate keys, not the master (README).

The master comes, first found, from `EXCHANGE_AUTH_SECRET` (the value),
`EXCHANGE_AUTH_SECRET_FILE` (a file readable by its owner only), or, for the
local cluster of `make run` (no `DATABASE_URL`), a file beside its data
directory made on first use. Anything else refuses to start (fail closed).
"""

import base64
import contextlib
import hashlib
import hmac
import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path

from app.local.cluster import Cluster

MIN_LENGTH = 32  # characters of a master secret


class SecretError(ValueError):
    """The master secret is missing or unfit; the message says which setting to fix."""


def key_secret(master: bytes, key_id: str) -> str:
    """What the key's holder signs with: 43 characters of URL-safe base64."""
    digest = hmac.new(master, b"EXCH1-key\n" + key_id.encode("ascii"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def master_secret(environ: Mapping[str, str]) -> bytes:
    """The master secret the settings name, made beside the local data on first use."""
    if value := environ.get("EXCHANGE_AUTH_SECRET"):
        return _checked(value, "EXCHANGE_AUTH_SECRET")
    if path := environ.get("EXCHANGE_AUTH_SECRET_FILE"):
        return _read(Path(path), "EXCHANGE_AUTH_SECRET_FILE")
    if environ.get("DATABASE_URL"):
        raise SecretError(
            "EXCHANGE_AUTH=on needs the master secret: set EXCHANGE_AUTH_SECRET_FILE to a file "
            f"readable by its owner only, holding at least {MIN_LENGTH} characters "
            "(or EXCHANGE_AUTH_SECRET to the value)"
        )
    path = local_secret(environ)
    return _read(path, f"the local secret {path}")


def configured(environ: Mapping[str, str]) -> bool:
    """Whether the settings name a master secret, rather than leave it to the local one."""
    return bool(environ.get("EXCHANGE_AUTH_SECRET") or environ.get("EXCHANGE_AUTH_SECRET_FILE"))


def local_secret(environ: Mapping[str, str]) -> Path:
    """The local cluster's secret, beside its data directory (`.pgdata.auth-secret`),
    written on first use; two processes racing keep the same one."""
    path = Cluster.from_env(environ).auth_secret_file
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f"{path.name}.{secrets.token_hex(8)}.new")
    descriptor = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_hex(32) + "\n")
            file.flush()
            os.fsync(file.fileno())
        with contextlib.suppress(FileExistsError):  # another process made it first
            os.link(scratch, path)
    finally:
        scratch.unlink()
    return path


def _read(path: Path, setting: str) -> bytes:
    try:
        mode = path.stat().st_mode
        text = path.read_text()
    except OSError as error:
        raise SecretError(f"cannot read {setting}: {error}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SecretError(
            f"{setting} ({path}) is readable by others than its owner: chmod 600 {path}"
        )
    return _checked(text.strip(), setting)


def _checked(value: str, setting: str) -> bytes:
    if len(value) < MIN_LENGTH:
        raise SecretError(f"{setting} is too short: at least {MIN_LENGTH} characters")
    return value.encode()
