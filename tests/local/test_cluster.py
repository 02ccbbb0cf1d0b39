"""The local PostgreSQL cluster: the binaries it picks; its data outliving restarts and crashes."""

import glob
import os
import shutil
import signal
import time

import pytest
import sqlalchemy as sa

from app.local import cluster
from app.local.cluster import Cluster, ClusterError

SYSTEM_POSTGRES = bool(shutil.which("pg_ctl") or glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
needs_system_postgres = pytest.mark.skipif(not SYSTEM_POSTGRES, reason="no system PostgreSQL here")


@pytest.fixture(autouse=True)
def default_discovery(monkeypatch):
    monkeypatch.delenv("EXCHANGE_PG_BINDIR", raising=False)


@pytest.fixture
def pg(tmp_path):
    """A cluster of the test's own, not yet created; deleted afterwards."""
    own = Cluster(tmp_path / "data", cluster.free_port())
    yield own
    own.reset()


def sql(url: str, statement: str):
    """Run one statement in a transaction of its own; return its first value, if any."""
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    try:
        with engine.begin() as connection:
            result = connection.execute(sa.text(statement))
            return result.scalar() if result.returns_rows else None
    finally:
        engine.dispose()


def postmaster_pid(pg: Cluster) -> int:
    return int((pg.datadir / "postmaster.pid").read_text().split()[0])


@needs_system_postgres
def test_system_binaries_come_before_the_wheel():
    candidates = cluster.candidate_bindirs()
    assert cluster.find_bindir() == candidates[0] != cluster.wheel_bindir().resolve()
    assert candidates[-1] == cluster.wheel_bindir().resolve()


def test_EXCHANGE_PG_BINDIR_overrides_discovery(monkeypatch):
    monkeypatch.setenv("EXCHANGE_PG_BINDIR", str(cluster.wheel_bindir()))
    assert cluster.candidate_bindirs() == [cluster.wheel_bindir()]


def test_a_data_directory_gets_binaries_of_its_own_major_version(tmp_path):
    versions = {cluster.server_version(b): b for b in reversed(cluster.candidate_bindirs())}
    other = next((v for v in versions if versions[v] != cluster.find_bindir()), None)
    if other is None:
        pytest.skip("only one major version of PostgreSQL here")
    tmp_path.joinpath("PG_VERSION").write_text(other + "\n")
    assert Cluster(tmp_path).bindir() == versions[other]


def test_a_data_directory_of_a_missing_version_asks_for_a_reset(tmp_path):
    tmp_path.joinpath("PG_VERSION").write_text("9\n")
    with pytest.raises(ClusterError, match="make reset"):
        Cluster(tmp_path).bindir()


def test_wheel_binaries_run_a_working_server(pg, monkeypatch):
    monkeypatch.setenv("EXCHANGE_PG_BINDIR", str(cluster.wheel_bindir()))
    pg.ensure_running()
    assert pg.url().startswith("postgresql+psycopg2://postgres@127.0.0.1:")
    assert sql(pg.url(), "SELECT version()").startswith("PostgreSQL 18")


def test_ensure_running_creates_the_app_database_and_is_idempotent(pg):
    pg.ensure_running()
    pid = postmaster_pid(pg)
    pg.ensure_running()
    assert postmaster_pid(pg) == pid
    assert sql(pg.url(), "SELECT current_database()") == "exchange"
    assert sql(pg.url(), "SHOW fsync") == sql(pg.url(), "SHOW synchronous_commit") == "on"


def test_data_survives_a_stop_and_a_start(pg):
    pg.ensure_running()
    sql(pg.url(), "CREATE TABLE kept AS SELECT 42 AS answer")
    pg.stop()
    assert not pg.is_running()
    pg.ensure_running()
    assert sql(pg.url(), "SELECT answer FROM kept") == 42


def test_committed_data_survives_a_killed_server(pg):
    pg.ensure_running()
    sql(pg.url(), "CREATE TABLE kept AS SELECT 42 AS answer")
    os.kill(postmaster_pid(pg), signal.SIGKILL)
    deadline = time.monotonic() + 10
    while pg.is_running() and time.monotonic() < deadline:
        time.sleep(0.05)
    pg.ensure_running()
    assert sql(pg.url(), "SELECT answer FROM kept") == 42


def test_a_stale_pid_file_does_not_block_a_start(pg):
    pg.ensure_running()
    pg.stop()
    # As after a reboot: the recorded pid now belongs to a live process that is no postmaster.
    (pg.datadir / "postmaster.pid").write_text(f"{os.getpid()}\n{pg.datadir}\n")
    (pg.datadir / f".s.PGSQL.{pg.port}.lock").write_text(f"{os.getpid()}\n{pg.datadir}\n")
    assert not pg.is_running()
    pg.ensure_running()
    assert sql(pg.url(), "SELECT 1") == 1


def test_reset_deletes_the_cluster(pg):
    pg.ensure_running()
    sql(pg.url(), "CREATE TABLE gone (x int)")
    pg.reset()
    assert not pg.datadir.exists()
    pg.ensure_running()
    assert sql(pg.url(), "SELECT to_regclass('gone')") is None


def test_databases_are_created_and_dropped_by_url(pg):
    pg.ensure_running()
    other = pg.url("other")
    cluster.create_database(other)
    cluster.create_database(other)
    assert sql(other, "SELECT current_database()") == "other"
    cluster.drop_database(other)
    cluster.drop_database(other)
    assert sql(pg.url(), "SELECT count(*) FROM pg_database WHERE datname = 'other'") == 0


def test_cli_reports_url_and_status_from_the_environment(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EXCHANGE_PGDATA", str(tmp_path / "data"))
    monkeypatch.setenv("EXCHANGE_PGPORT", "6543")
    assert cluster.main(["url"]) == 0
    assert cluster.main(["status"]) == 3
    assert capsys.readouterr().out.splitlines() == [
        "postgresql+psycopg2://postgres@127.0.0.1:6543/exchange",
        f"no cluster in {tmp_path / 'data'}",
    ]


def test_the_session_database_is_reachable(database_url):
    assert sa.make_url(database_url).drivername == "postgresql+psycopg2"
    assert sql(database_url, "SELECT 1") == 1
