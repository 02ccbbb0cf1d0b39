"""The two families of legacy clients, and the setting that serves each (docs/shim.md).

One family sends a request per connection and reads one reply; the other
sends many requests on one connection and reads each reply as it comes. The
default framing serves the first; `EXCHANGE_SHIM_KEEP_OPEN=1` with bare
replies serves both. A client of the second family on the default framing
gets its first reply only, and the shim says so in its log.

The clients whose warnings are counted connect from addresses of their own
(127.0.0.2 and up): the shim limits its warnings per address.
"""

import time

import pytest

from app.client.transport import read_reply
from tests.conftest import SHIM_LIMIT_FLAG
from tests.shim.processes import running_shim
from tests.shim.wire import children, connect, converse, framed

CREATE = b'<create><account id="%d" balance="10"/></create>'
WARNING_TIMEOUT = 10.0


def created(number: int):
    return [("created", {"id": str(number)}, None)]


@pytest.fixture(scope="module")
def logged_shim(server, tmp_path_factory):
    """A shim in the default framing, its log in a file the tests read."""
    log = tmp_path_factory.mktemp("shim") / "shim.log"
    with running_shim(server, *SHIM_LIMIT_FLAG, log=log) as running:
        yield running


def warnings_of_lost_requests(shim, host: str) -> list[str]:
    prefix = f"[WARNING] client {host} sent more after its request"
    return [line for line in shim.log_text().splitlines() if prefix in line]


def wait_for_warnings_of_lost_requests(shim, host: str) -> list[str]:
    deadline = time.monotonic() + WARNING_TIMEOUT
    while not (lines := warnings_of_lost_requests(shim, host)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return lines


def send_two_requests_reading_each_reply(shim, source: str) -> tuple[bytes, bytes]:
    """A client of the second family: both replies, the second empty if the shim closed."""
    with connect(shim.address, source=source) as connection, connection.makefile("rb") as stream:
        connection.sendall(framed(CREATE % 1))
        first = read_reply(stream)
        connection.sendall(framed(CREATE % 2))
        return first, stream.read()


@pytest.mark.parametrize("shim_fixture", ["shim", "bare_kept_open_shim"])
def test_one_request_per_connection_reads_its_whole_reply_with_one_recv(
    shim_fixture, request, engine
):
    shim = request.getfixturevalue(shim_fixture)
    with connect(shim.address) as connection:
        connection.sendall(framed(CREATE % 1))
        assert children(connection.recv(65536)) == created(1)


def test_many_requests_on_a_kept_open_connection_get_bare_replies_as_they_come(
    bare_kept_open_shim, engine
):
    with connect(bare_kept_open_shim.address) as connection, connection.makefile("rb") as stream:
        for number in range(1, 6):
            connection.sendall(framed(CREATE % number))
            assert children(read_reply(stream)) == created(number)


def test_request_after_the_reply_in_default_framing_is_lost_with_a_warning_naming_the_setting(
    logged_shim, engine
):
    first, second = send_two_requests_reading_each_reply(logged_shim, "127.0.0.2")
    assert (children(first), second) == (created(1), b"")
    [warning] = wait_for_warnings_of_lost_requests(logged_shim, "127.0.0.2")
    assert "EXCHANGE_SHIM_KEEP_OPEN=1" in warning


def test_whitespace_after_the_request_is_no_cause_for_a_warning(logged_shim, engine):
    assert children(converse(logged_shim.address, framed(CREATE % 1) + b"\r\n")) == created(1)
    # Another client's warning, written after the first connection has closed.
    send_two_requests_reading_each_reply(logged_shim, "127.0.0.3")
    assert wait_for_warnings_of_lost_requests(logged_shim, "127.0.0.3")
    assert warnings_of_lost_requests(logged_shim, "127.0.0.1") == []


def test_one_client_gets_at_most_one_warning_in_10_s(logged_shim, engine):
    for _ in range(3):
        send_two_requests_reading_each_reply(logged_shim, "127.0.0.4")
    send_two_requests_reading_each_reply(logged_shim, "127.0.0.5")
    assert wait_for_warnings_of_lost_requests(logged_shim, "127.0.0.5")
    assert len(warnings_of_lost_requests(logged_shim, "127.0.0.4")) == 1


def test_the_start_line_names_the_framing(logged_shim):
    assert (
        "one request per connection, replies bare "
        "(EXCHANGE_SHIM_KEEP_OPEN=0, EXCHANGE_SHIM_REPLY_LENGTH=0)"
    ) in logged_shim.log_text()


def test_warnings_held_back_are_counted_when_the_shim_stops(server, engine, tmp_path):
    log = tmp_path / "shim.log"
    with running_shim(server, *SHIM_LIMIT_FLAG, log=log) as shim:
        for _ in range(3):
            send_two_requests_reading_each_reply(shim, "127.0.0.6")
        assert wait_for_warnings_of_lost_requests(shim, "127.0.0.6")
    [first, last] = warnings_of_lost_requests(shim, "127.0.0.6")
    assert "more since the last warning" not in first
    assert last.endswith("(2 more since the last warning)")
