"""The readiness probe: ready only when the shim answers and so does the service behind it."""

from app.local.cluster import free_port
from app.shim.probe import main as probe
from tests.shim.processes import running_shim


def test_ready_when_shim_and_service_answer(shim, engine):
    assert probe(["--port", str(shim.address[1])]) == 0


def test_not_ready_when_the_service_is_down(capsys):
    with running_shim(f"http://127.0.0.1:{free_port()}/") as orphan:
        assert probe(["--port", str(orphan.address[1])]) == 1
    assert capsys.readouterr().err.startswith("not ready: service unavailable")


def test_not_ready_when_nothing_listens(capsys):
    port = free_port()
    assert probe(["--port", str(port), "--timeout", "2"]) == 1
    assert capsys.readouterr().err.startswith(f"not ready: no reply from 127.0.0.1:{port}")


def test_port_comes_from_the_shim_setting(shim, engine):
    assert probe([], environ={"EXCHANGE_SHIM_PORT": str(shim.address[1])}) == 0
