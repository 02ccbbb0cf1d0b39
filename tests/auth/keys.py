"""Keys for the tests: issued through the real store, with a master secret of the tests' own."""

from app.auth.proof import Credentials
from app.auth.secret import key_secret
from app.auth.store import KeyStore

MASTER = "a test master secret, 32 characters or more"
MASTER_BYTES = MASTER.encode()


def issue(store: KeyStore, account_id: str | None, *permissions: str) -> Credentials:
    """A new key and its secret, as `python -m app.auth create` prints them."""
    key = store.issue(account_id, permissions)
    return Credentials(key, key_secret(MASTER_BYTES, key))
