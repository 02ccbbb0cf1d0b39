"""Shims in front of the session's real server, for the framings beyond the default one."""

import pytest

from tests.conftest import SHIM_LIMIT_FLAG
from tests.shim.processes import running_shim


@pytest.fixture(scope="session")
def framed_shim(server):
    """Replies prefixed with their length line, connections kept open between requests."""
    with running_shim(
        server, *SHIM_LIMIT_FLAG, "--reply-length", "--keep-open", idle_timeout=1.0
    ) as running:
        yield running


@pytest.fixture(scope="session")
def bare_kept_open_shim(server):
    """Connections kept open between requests, replies bare: both families of clients served."""
    with running_shim(server, *SHIM_LIMIT_FLAG, "--keep-open", idle_timeout=1.0) as running:
        yield running
