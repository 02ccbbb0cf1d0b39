"""`make run` heals: each part it started killed with SIGKILL under load comes back by itself.

The launcher restarts the part (app/local/supervisor.py) while the others keep
serving; clients, over HTTP and through the shim, see only the errors of the
part missing meanwhile, each saying whether its request may have been applied.
The books balance afterwards, every acknowledged order exists, no order exists
that its client was told was not applied, no gauge is negative, the counters
go on across a restart, and the run leaves no metrics directory behind.
"""

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from app.local.cluster import Cluster, free_port
from app.storage.engine import database_engine
from app.web.metrics_directory import PREFIX
from tests.integrity.books import broken_rules
from tests.integrity.traffic import (
    ACCOUNTS,
    DATABASE_DOWN,
    OPENING,
    STRICT,
    SYMBOLS,
    Tolerance,
    background_load,
    post_create,
    untruthful_replies,
)
from tests.launcher import running_launcher
from tests.web.servers import counters_gone_down, negative_gauges, scrape

# Parts going away cut connections: over HTTP a client sees the cut, through the shim
# an error that says whether its request was sent.
PART_DOWN = Tolerance(disconnects=True, unavailable=True)
# PostgreSQL going away: the service's own errors, which the shim relays.
POSTGRESQL_DOWN = Tolerance(DATABASE_DOWN.statuses, DATABASE_DOWN.errors, unavailable=True)


def test_postgresql_killed_under_load_is_restarted_while_the_service_waits(tmp_path):
    local = Cluster(tmp_path / "pgdata", free_port())
    with drill_on_own_postgresql(local, tmp_path / "run.log") as (launcher, _):
        postmaster = int((local.datadir / "postmaster.pid").read_text().split()[0])
        os.kill(postmaster, signal.SIGKILL)
        launcher.wait_for_log("PostgreSQL is no longer running; restarting in")
        launcher.wait_for_log("PostgreSQL back after")


@contextlib.contextmanager
def drill_on_own_postgresql(local: Cluster, log: Path, **settings: str):
    """make run with its own PostgreSQL in `local`, serving and under load over HTTP and
    TCP, while the block breaks something; then the load goes on, and the checks after
    every drill: no negative gauge, the books balance, the replies were truthful."""
    try:
        with running_launcher(
            log,
            DATABASE_URL=None,
            EXCHANGE_PGDATA=str(local.datadir),
            EXCHANGE_PGPORT=str(local.port),
            **settings,
        ) as launcher:
            launcher.wait_until_serving()
            post_create(launcher.web_url, ACCOUNTS, OPENING)
            with background_load(
                launcher.web_url, ACCOUNTS, SYMBOLS, POSTGRESQL_DOWN, launcher.shim_address
            ) as load:
                load.wait_for_more("answered", 50)
                yield launcher, load
                load.wait_for_more("answered", 50)
            assert negative_gauges(launcher.web_url) == {}
            engine = database_engine(local.url(), pool_size=1)
            try:
                assert load.failures() == []
                assert broken_rules(engine) == []
                assert untruthful_replies(engine, load) == []
            finally:
                engine.dispose()
            assert launcher.interrupt() == 0
    finally:
        local.stop()


def test_gunicorn_killed_under_load_is_restarted(database_url, engine, tmp_path):
    temporary = tmp_path / "tmp"  # where the run's metrics directory goes
    temporary.mkdir()
    with running_launcher(
        tmp_path / "run.log", DATABASE_URL=database_url, TMPDIR=str(temporary)
    ) as launcher:
        launcher.wait_until_serving()
        post_create(launcher.web_url, ACCOUNTS, OPENING)
        with background_load(
            launcher.web_url, ACCOUNTS, SYMBOLS, PART_DOWN, launcher.shim_address
        ) as load:
            load.wait_for_more("answered", 50)
            before = scrape(launcher.web_url, "counter")
            master = launcher.child_pid("gunicorn")
            os.kill(master, signal.SIGKILL)
            launcher.wait_for_log("gunicorn was killed by SIGKILL; restarting in")
            launcher.wait_for_log("gunicorn back after")
            load.wait_for_more("answered", 50)
        after = scrape(launcher.web_url, "counter")
        assert counters_gone_down(before, after) == {}
        assert after[("exchange_master_starts_total", ())] == 2
        assert after[("exchange_restarts_total", (("part", "gunicorn"),))] == 1
        assert negative_gauges(launcher.web_url) == {}
        assert launcher.child_pid("gunicorn") != master
        assert launcher.interrupt() == 0

    assert list(temporary.glob(f"{PREFIX}*")) == []
    assert load.failures() == []
    assert broken_rules(engine) == []
    assert untruthful_replies(engine, load) == []


def test_shim_killed_under_load_is_restarted_while_http_clients_notice_nothing(
    database_url, engine, tmp_path
):
    with running_launcher(tmp_path / "run.log", DATABASE_URL=database_url) as launcher:
        launcher.wait_until_serving()
        post_create(launcher.web_url, ACCOUNTS, OPENING)
        with (
            background_load(launcher.web_url, ACCOUNTS, SYMBOLS, STRICT) as load,
            background_load(
                launcher.web_url, ACCOUNTS, SYMBOLS, PART_DOWN, launcher.shim_address, False
            ) as tcp,
        ):
            tcp.wait_for_more("answered", 20)
            os.kill(launcher.child_pid("app.shim"), signal.SIGKILL)
            launcher.wait_for_log("shim was killed by SIGKILL; restarting in")
            launcher.wait_for_log("shim back after")
            tcp.wait_for_more("answered", 20)
            load.wait_for_more("answered", 50)
        assert launcher.interrupt() == 0

    assert load.failures() == [] and tcp.failures() == []
    assert broken_rules(engine) == []
    assert untruthful_replies(engine, load, tcp) == []


DISK = "96m"  # room for the cluster (about 40 MB) and a little more
HOLD_FULL_S = 8.0


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs for the data needs root")
def test_postgresql_on_a_full_disk_is_waited_for_and_back_once_space_is_freed(tmp_path):
    """The drill fills PostgreSQL's disk until it PANICs and cannot start again, holds it
    full for 60 s, then frees it. Here the supervisor's longest pause is 0.5 s (8 s by
    default) and the disk is held full for 8 s: a dozen failed starts, where 5 within a
    minute made make run stop everything. Meanwhile the service answers, not ready, every
    request refused as not applied; once space is freed it is back by itself."""
    disk = tmp_path / "disk"
    local = Cluster(disk / "pgdata", free_port())
    with (
        small_disk(disk),
        drill_on_own_postgresql(local, tmp_path / "run.log", EXCHANGE_RESTART_MAX_DELAY="0.5") as (
            launcher,
            load,
        ),
    ):
        filler = fill(disk)
        make_postgresql_write_its_wal(local)
        launcher.wait_for_log("PostgreSQL is no longer running; restarting in")
        full_since = time.monotonic()
        while time.monotonic() - full_since < HOLD_FULL_S:
            assert launcher.process.poll() is None, launcher.log_text()
            assert status(launcher.web_url, "livez") == 200
            assert status(launcher.web_url, "readyz") == 503
            time.sleep(0.2)
        load.wait_for_more("tolerated", 20)
        filler.unlink()
        launcher.wait_for_log("PostgreSQL back after")
        log = launcher.log_text()
        assert "PostgreSQL did not start: its disk is full (" in log
        assert log.count("waiting for space; restarting in") >= 6


@contextlib.contextmanager
def small_disk(mountpoint: Path):
    """A tmpfs of DISK bytes; the test is skipped where even root may not mount one (a
    container without the capability), saying so."""
    mountpoint.mkdir()
    command = ["mount", "-t", "tmpfs", "-o", f"size={DISK}", "tmpfs", mountpoint]
    mounted = subprocess.run(command, capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", mountpoint], check=True)


def fill(disk: Path) -> Path:
    """Write to the disk until it is full; the file that filled it."""
    filler = disk / "filler"
    with filler.open("wb") as out:
        with contextlib.suppress(OSError):
            while True:
                out.write(bytes(1 << 20))
                out.flush()
    return filler


def make_postgresql_write_its_wal(local: Cluster) -> None:
    """Switch to a new WAL segment and commit, until PostgreSQL finds no room for one and
    PANICs. (Orders fail on their own first: their tables cannot grow.)"""
    engine = database_engine(local.url(), pool_size=1)
    try:
        for _ in range(10):
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.execute(text("SELECT pg_logical_emit_message(true, 'drill', 'wal')"))
                connection.execute(text("SELECT pg_switch_wal()"))
    except DBAPIError:  # the server went down: what the drill wanted
        return
    finally:
        engine.dispose()
    raise AssertionError("PostgreSQL kept running on a full disk")


def status(url: str, path: str) -> int:
    return requests.get(f"{url}/{path}", timeout=5).status_code
