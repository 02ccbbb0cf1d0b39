"""An earlier revision's service beside ours in `make bench` (BENCH_BASELINE=<revision>).

A gain is only worth a ratio measured side by side: the same machine, the
same minutes, the same load. So the revision is checked out with
`git worktree add --detach` into var/bench/baseline-<commit> (kept for the
next run while it stays at that commit, removed when another revision is
wanted or when the run fails), and its gunicorn and shim run from there:
its own directory as working directory and import path, its own
gunicorn.conf.py and the commands of its own app/run.py, with our
interpreter. It has a database of its own in the benchmark's cluster, named
after the commit, whose schema its gunicorn creates; the workload's
accounts and symbols are set up through its own service.

Because the database is named after the commit, a saved setup
(var/bench/setup-*) holds the baseline database of at most one revision:
another revision's is dropped, the wanted one set up anew, and the setup
saved again.
"""

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from app.local.cluster import PROJECT, Cluster, create_database, drop_database

CHECKOUT_PREFIX = "baseline-"
DATABASE_PREFIX = "baseline_"
# Asked of the revision's own code, from its own directory: where its package
# is imported from, and the commands its `make run` starts.
COMMANDS_PROBE = (
    "import json, app, app.run; "
    "print(json.dumps([app.__file__, app.run.WEB_COMMAND, app.run.SHIM_COMMAND]))"
)


@dataclass(frozen=True)
class Revision:
    """A commit of the repository, as BENCH_BASELINE named it."""

    name: str
    commit: str
    subject: str

    @classmethod
    def resolve(cls, name: str, repo: Path = PROJECT) -> "Revision":
        commit = _git(repo, "rev-parse", "--verify", "--quiet", f"{name}^{{commit}}")
        if not commit:
            raise RuntimeError(f"BENCH_BASELINE={name} names no commit of {repo}")
        return cls(name, commit, _git(repo, "log", "-1", "--format=%s", commit))

    @property
    def short(self) -> str:
        return self.commit[:7]

    @property
    def database(self) -> str:
        return f"{DATABASE_PREFIX}{self.commit[:12]}"

    def checkout_in(self, under: Path) -> Path:
        return under / f"{CHECKOUT_PREFIX}{self.commit[:12]}"

    def describe(self) -> dict[str, str]:
        return {"revision": self.name, "commit": self.commit, "subject": self.subject}


def check_out(revision: Revision, under: Path, repo: Path = PROJECT) -> tuple[Path, bool]:
    """The revision's checkout under `under`, and whether it was made now.

    One left by an earlier run is reused if it is still at that commit and
    unmodified; checkouts of other revisions are removed.
    """
    wanted = revision.checkout_in(under).resolve()
    for directory in _checkouts(under, repo):
        if directory != wanted or not _is_pristine(directory, revision.commit):
            remove_checkout(directory, repo)
    if wanted.exists():
        return wanted, False
    under.mkdir(parents=True, exist_ok=True)
    _git(repo, "worktree", "add", "--detach", "--quiet", str(wanted), revision.commit, check=True)
    return wanted, True


def remove_checkout(directory: Path, repo: Path = PROJECT) -> None:
    """Remove a checkout, registered or not, present or not."""
    _git(repo, "worktree", "remove", "--force", str(directory))
    shutil.rmtree(directory, ignore_errors=True)


def _checkouts(under: Path, repo: Path) -> list[Path]:
    """Baseline checkouts under `under`: registered worktrees (even when their
    directory is gone) and directories left behind without a registration."""
    registered = [
        Path(line.removeprefix("worktree "))
        for line in _git(repo, "worktree", "list", "--porcelain").splitlines()
        if line.startswith("worktree ")
    ]
    present = list(under.glob(f"{CHECKOUT_PREFIX}*")) if under.exists() else []
    found = {path.resolve() for path in registered + present}
    return sorted(
        path
        for path in found
        if path.parent == under.resolve() and path.name.startswith(CHECKOUT_PREFIX)
    )


def _is_pristine(directory: Path, commit: str) -> bool:
    # A worktree has a .git file; without one, git would answer for the enclosing repository.
    if not (directory / ".git").is_file():
        return False
    at = _git(directory, "rev-parse", "HEAD")
    changed = _git(directory, "status", "--porcelain", "--untracked-files=no")
    return at == commit and not changed


def own_commands(directory: Path) -> tuple[list[str], list[str]]:
    """The revision's gunicorn and shim commands, asked of its own code, which
    must be imported from its checkout and not from ours."""
    result = subprocess.run(
        [sys.executable, "-c", COMMANDS_PROBE],
        cwd=directory,
        env=dict(os.environ, PYTHONPATH=str(directory)),
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(f"cannot read the commands of {directory}: {result.stderr.strip()}")
    package, web, shim = json.loads(result.stdout)
    if not Path(package).resolve().is_relative_to(directory.resolve()):
        raise RuntimeError(f"the baseline's code would come from {package}, not from {directory}")
    return web, shim


def prepare_database(cluster: Cluster, name: str) -> None:
    """Create the baseline's database, empty, unless it exists; drop other revisions'."""
    engine = sa.create_engine(cluster.url("postgres"), poolclass=sa.NullPool)
    try:
        with engine.connect() as connection:
            existing = connection.scalars(
                sa.text("SELECT datname FROM pg_database WHERE starts_with(datname, :prefix)"),
                {"prefix": DATABASE_PREFIX},
            ).all()
    finally:
        engine.dispose()
    for stale in set(existing) - {name}:
        drop_database(cluster.url(stale))
    create_database(cluster.url(name))


def _git(directory: Path, *args: str, check: bool = False) -> str:
    result = subprocess.run(["git", *args], cwd=directory, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout.strip() if result.returncode == 0 else ""
