"""Shims in front of the session's real server, one per framing the tests need."""

import pytest

from tests.conftest import SMALL_BODY_LIMIT
from tests.shim.processes import running_shim

LIMIT_FLAG = ("--max-body-bytes", str(SMALL_BODY_LIMIT))


@pytest.fixture(scope="session")
def shim(server):
    """The default framing: bare reply, then close."""
    with running_shim(server, *LIMIT_FLAG) as running:
        yield running


@pytest.fixture(scope="session")
def framed_shim(server):
    """Replies prefixed with their length line, connections kept open between requests."""
    with running_shim(
        server, *LIMIT_FLAG, "--reply-length", "--keep-open", idle_timeout=1.0
    ) as running:
        yield running
