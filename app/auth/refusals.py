"""Every refusal of SPEC §8, in one place: each is answered as a whole, and nothing runs."""

from app.auth.keys import Key
from app.exchange.errors import Reason


class AuthenticationFailed(Exception):
    """No usable proof: every cause gets the same reply, 401.

    `cause`, for the logs and metrics only: missing, malformed, stale,
    bad_signature (an unknown key's too), unknown_key, revoked or replayed.
    """

    def __init__(self, cause: str):
        super().__init__("authentication failed")
        self.cause = cause


class RateLimited(Exception):
    """The key sent more requests than its rate allows: 429, with `retry_after` seconds."""

    def __init__(self, key: Key, retry_after: int):
        super().__init__("rate limited")
        self.key = key
        self.retry_after = retry_after


class Forbidden(Exception):
    """A `<create>` by a key that is not an admin's: 403."""

    def __init__(self):
        super().__init__("forbidden")


class NotPermitted(Exception):
    """A `GET` of the key's own account without `read`: 403."""

    def __init__(self):
        super().__init__(Reason.NOT_PERMITTED.value)
