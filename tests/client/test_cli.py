"""`python -m app.client`: files or stdin in, replies pretty-printed, an exit status for scripts."""

import io
import os
import subprocess
import sys
from urllib.parse import urlsplit

from app.client.cli import main
from app.client.transport import read_reply
from app.local.cluster import PROJECT, free_port

CREATE = b'<create><account id="1" balance="10"/></create>'
PRETTY_CREATED = b"""<?xml version='1.0' encoding='UTF-8'?>
<results>
  <created id="1"/>
</results>
"""


def tcp(shim) -> str:
    host, port = shim.address
    return f"{host}:{port}"


def test_file_over_tcp_gets_its_reply_pretty_printed(shim, engine, tmp_path, capsysbinary):
    request = tmp_path / "create.xml"
    request.write_bytes(CREATE)
    assert main(["--tcp", tcp(shim), str(request)]) == 0
    assert capsysbinary.readouterr().out == PRETTY_CREATED


def test_stdin_over_http(server, engine, monkeypatch, capsysbinary):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(CREATE)))
    assert main(["--http", server + "/"]) == 0
    assert capsysbinary.readouterr().out == PRETTY_CREATED


def test_without_a_target_it_asks_the_http_service_where_exchange_bind_says(server, engine):
    """`echo ... | python -m app.client` reaches the service `make run` starts."""
    environment = dict(os.environ, EXCHANGE_BIND=urlsplit(server).netloc)
    client = subprocess.run(
        [sys.executable, "-m", "app.client"],
        input=CREATE,
        capture_output=True,
        cwd=PROJECT,
        env=environment,
        timeout=60,
    )
    assert (client.returncode, client.stdout) == (0, PRETTY_CREATED), client.stderr


def test_length_prefixed_replies_and_raw_output(framed_shim, engine, tmp_path, capsysbinary):
    first, second = tmp_path / "first.xml", tmp_path / "second.xml"
    first.write_bytes(CREATE)
    second.write_bytes(CREATE)
    assert main(["--tcp", tcp(framed_shim), "--raw", str(first), str(second)]) == 0
    out = capsysbinary.readouterr().out
    assert out.count(b'<created id="1"/>') == 1
    assert out.count(b"account already exists") == 1
    assert out.count(b"==> ") == 2


def test_error_replies_are_replies_but_no_reply_is_a_failure(shim, tmp_path, capsysbinary):
    request = tmp_path / "bad.xml"
    request.write_bytes(b"<nonsense")
    assert main(["--tcp", tcp(shim), str(request)]) == 0
    assert main(["--tcp", f"127.0.0.1:{free_port()}", str(request)]) == 1
    assert b"Connection refused" in capsysbinary.readouterr().err


class _Stream:
    """A socket stream that fails the test if read past the chunks it holds."""

    def __init__(self, *chunks: bytes):
        self._data = io.BytesIO(b"".join(chunks))

    def readline(self, limit: int) -> bytes:
        return self._data.readline(limit)

    def read(self, size: int) -> bytes:
        return self._data.read(size)

    def read1(self, size: int) -> bytes:
        chunk = self._data.read1(size)
        assert chunk, "read past the reply: the client would hang on a kept-open connection"
        return chunk


def test_bare_reply_ends_with_its_root_element():
    document = b"<?xml version='1.0' encoding='UTF-8'?>\n<results><created id=\"1\"/></results>\n"
    assert read_reply(_Stream(document)) == document


def test_length_prefixed_reply_is_read_to_its_length():
    assert read_reply(_Stream(b"10\n<results/>")) == b"<results/>"
