"""`make run`: the launcher starts the web tier and the shim together, stops both on Ctrl-C,
and stops both when one keeps dying."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from app.auth.proof import Credentials
from app.endpoints import web_url
from app.local.cluster import PROJECT, Cluster, free_port
from tests.launcher import running_launcher
from tests.shim.wire import children, converse, framed


@pytest.mark.parametrize(
    ("bind", "url"),
    [
        ("127.0.0.1:8000", "http://127.0.0.1:8000/"),
        ("0.0.0.0:9000", "http://127.0.0.1:9000/"),
        ("10.1.2.3:8080", "http://10.1.2.3:8080/"),
    ],
)
def test_shim_follows_the_web_tiers_bind_address(bind, url):
    assert web_url({"EXCHANGE_BIND": bind}) == url


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_launcher_serves_tcp_through_the_web_tier_and_stops_on_ctrl_c_or_sigterm(
    database_url, engine, tmp_path, signum
):
    with running_launcher(tmp_path / "run.log", DATABASE_URL=database_url) as launcher:
        launcher.wait_until_serving()
        reply = converse(
            launcher.shim_address, framed(b'<create><account id="4242" balance="1"/></create>')
        )
        assert b'<created id="4242"/>' in reply
        gunicorn, shim = launcher.child_pid("gunicorn"), launcher.child_pid("app.shim")
        assert launcher.interrupt(signum) == 0
    assert "Shutting down: Master" in launcher.log_text()
    for stopped in (gunicorn, shim):
        with pytest.raises(ProcessLookupError):
            os.killpg(stopped, 0)


def test_launcher_stops_everything_when_a_part_keeps_dying(database_url, tmp_path):
    """The shim's port is taken (bound, not listening, so that nothing answers there):
    restarting cannot help, and the launcher says so."""
    shim_port = free_port()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", shim_port))
        with running_launcher(
            tmp_path / "run.log",
            DATABASE_URL=database_url,
            EXCHANGE_SHIM_PORT=str(shim_port),
            EXCHANGE_RESTART_DELAY="0.01",
        ) as launcher:
            gunicorn = launcher.child_pid("gunicorn")
            assert launcher.process.wait(timeout=60) == 1
    log = launcher.log_text()
    assert log.count("shim exited with status 1; restarting in") == 4
    assert "shim exited with status 1: 5 deaths within 60 s: stopping everything" in log
    with pytest.raises(ProcessLookupError):  # gunicorn's master and workers were stopped
        os.killpg(gunicorn, 0)


def test_authentication_on_needs_no_other_setting_for_the_local_cluster(tmp_path):
    """`EXCHANGE_AUTH=on make run`: the master secret is made beside the local data, for its
    owner's eyes only, and a key issued with `python -m app.auth` signs requests at once."""
    local = Cluster(tmp_path / "pgdata", free_port())
    settings = {
        "DATABASE_URL": None,
        "EXCHANGE_PGDATA": str(local.datadir),
        "EXCHANGE_PGPORT": str(local.port),
        "EXCHANGE_AUTH": "on",
    }
    try:
        with running_launcher(tmp_path / "run.log", **settings) as launcher:
            launcher.wait_until_serving()
            secret = tmp_path / "pgdata.auth-secret"
            assert secret.stat().st_mode & 0o777 == 0o600
            environment = {**os.environ, **{k: v for k, v in settings.items() if v}}
            environment.pop("DATABASE_URL", None)
            issued = subprocess.run(
                [sys.executable, "-m", "app.auth", "create", "--perms", "admin"],
                cwd=PROJECT,
                env=environment,
                capture_output=True,
                text=True,
                check=True,
            )
            key = json.loads(issued.stdout)
            admin = Credentials(key["key"], key["secret"])
            create = b'<create><account id="77" balance="1"/></create>'
            assert children(converse(launcher.shim_address, framed(create))) == [
                ("error", {}, "authentication failed")
            ]
            signed = converse(launcher.shim_address, framed(admin.prefixed(create)))
            assert children(signed) == [("created", {"id": "77"}, None)]
            assert launcher.interrupt() == 0
    finally:
        local.stop()


@pytest.mark.parametrize(
    ("settings", "reason"),
    [
        ({"EXCHANGE_AUTH": "maybe"}, "EXCHANGE_AUTH must be on or off, not 'maybe'"),
        ({"EXCHANGE_AUTH": "on"}, "EXCHANGE_AUTH=on needs the master secret"),
        (
            {"EXCHANGE_AUTH": "on", "EXCHANGE_AUTH_SECRET_FILE": "/nonexistent"},
            "cannot read EXCHANGE_AUTH_SECRET_FILE",
        ),
    ],
    ids=["not-a-switch", "no-secret", "no-such-file"],
)
def test_a_bad_authentication_setting_refuses_to_start_saying_which(
    database_url, tmp_path, settings, reason
):
    with running_launcher(tmp_path / "run.log", DATABASE_URL=database_url, **settings) as launcher:
        assert launcher.process.wait(timeout=30) == 1
    assert f"cannot start: {reason}" in launcher.log_text()
    assert "gunicorn" not in launcher.log_text()  # nothing was started


@pytest.mark.parametrize("auth", ["off", "on"])
def test_listening_beyond_loopback_with_authentication_off_is_warned_about_once_each(
    database_url, engine, tmp_path, auth
):
    with running_launcher(
        tmp_path / "run.log",
        DATABASE_URL=database_url,
        EXCHANGE_BIND=f"0.0.0.0:{free_port()}",
        EXCHANGE_SHIM_HOST="0.0.0.0",
        EXCHANGE_AUTH=auth,
        EXCHANGE_AUTH_SECRET="x" * 32,
    ) as launcher:
        launcher.wait_for_log("listening on 0.0.0.0")
        launcher.wait_for_log("Booting worker")
        assert launcher.interrupt() == 0
    warned = [line for line in launcher.log_text().splitlines() if "authentication off" in line]
    if auth == "on":
        assert warned == []
    else:
        assert len(warned) == 2
        assert all("EXCHANGE_AUTH=on" in line for line in warned)
        assert any("the service listens on 0.0.0.0" in line for line in warned)
        assert any("the shim listens on 0.0.0.0" in line for line in warned)


def test_a_part_that_served_is_restarted_for_as_long_as_it_takes_and_comes_back(
    database_url, tmp_path
):
    """The shim's port taken by another program after it served: what stops it needs a
    person, not a stop of everything. Restarted every 0.2 s (the test's longest pause,
    8 s by default), far more than 5 times in 60 s, it comes back once the port is free."""
    with running_launcher(
        tmp_path / "run.log",
        DATABASE_URL=database_url,
        EXCHANGE_RESTART_DELAY="0.2",
        EXCHANGE_RESTART_MAX_DELAY="0.2",
    ) as launcher:
        launcher.wait_until_serving()
        with socket.socket() as squatter:
            squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            os.kill(launcher.child_pid("app.shim"), signal.SIGKILL)
            bind_once_free(squatter, launcher.shim_address)
            squatter.listen()
            launcher.wait_for_log("shim was killed by SIGKILL; restarting in")
            while launcher.log_text().count("shim exited with status 1; restarting in") < 6:
                assert launcher.process.poll() is None, launcher.log_text()
                time.sleep(0.1)
        launcher.wait_for_log("shim back after")
        launcher.wait_until_serving()
        assert launcher.interrupt() == 0


def bind_once_free(listener: socket.socket, address: tuple[str, int], timeout: float = 1.0):
    """Bind as soon as the killed process holding the address is gone."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return listener.bind(address)
        except OSError:
            assert time.monotonic() < deadline, f"{address} not free within {timeout} s"
            time.sleep(0.005)
