"""The baseline revision: its checkout, its own commands, and its twins in the plan and rounds."""

import subprocess

import pytest

from bench.baseline import Revision, check_out, own_commands
from bench.run import Settings, plan, round_order

RUN_PY = 'WEB_COMMAND = ["web", "{version}"]\nSHIM_COMMAND = ["shim", "{version}"]\n'


def _git(repo, *args: str) -> str:
    identity = ["-c", "user.name=bench", "-c", "user.email=bench@example.org"]
    result = subprocess.run(
        ["git", *identity, *args], cwd=repo, capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


@pytest.fixture
def repo(tmp_path):
    """A repository of two commits, each with an app/run.py of its own."""
    repo = tmp_path / "repo"
    (repo / "app").mkdir(parents=True)
    (repo / "app" / "__init__.py").write_text("")
    _git(repo, "init", "--quiet")
    for version in ("one", "two"):
        (repo / "app" / "run.py").write_text(RUN_PY.format(version=version))
        _git(repo, "add", ".")
        _git(repo, "commit", "--quiet", "-m", f"Release {version}")
    return repo


def _registered(repo) -> list[str]:
    listing = _git(repo, "worktree", "list", "--porcelain").splitlines()
    return [line.split(" ", 1)[1] for line in listing if line.startswith("worktree ")][1:]


def test_a_revision_is_resolved_to_its_commit_and_subject(repo):
    revision = Revision.resolve("HEAD~1", repo)
    assert revision.commit == _git(repo, "rev-parse", "HEAD~1")
    assert revision.subject == "Release one"
    assert revision.database == f"baseline_{revision.commit[:12]}"
    with pytest.raises(RuntimeError, match="names no commit"):
        Revision.resolve("no-such-revision", repo)


def test_the_checkout_is_made_once_then_reused(repo):
    under = repo / "var" / "bench"
    revision = Revision.resolve("HEAD~1", repo)
    directory, made = check_out(revision, under, repo)
    assert made
    assert _git(directory, "rev-parse", "HEAD") == revision.commit
    assert (directory / "app" / "run.py").read_text() == RUN_PY.format(version="one")
    assert check_out(revision, under, repo) == (directory, False)


def test_a_modified_checkout_is_made_anew(repo):
    under = repo / "var" / "bench"
    revision = Revision.resolve("HEAD~1", repo)
    directory, _ = check_out(revision, under, repo)
    (directory / "app" / "run.py").write_text("changed")
    assert check_out(revision, under, repo) == (directory, True)
    assert (directory / "app" / "run.py").read_text() == RUN_PY.format(version="one")


def test_checkouts_of_other_revisions_are_removed(repo):
    under = repo / "var" / "bench"
    older, _ = check_out(Revision.resolve("HEAD~1", repo), under, repo)
    leftover = under / "baseline-0123456789ab"  # a directory git no longer knows
    leftover.mkdir()
    newer, made = check_out(Revision.resolve("HEAD", repo), under, repo)
    assert made
    assert not older.exists() and not leftover.exists()
    assert _registered(repo) == [str(newer)]


def test_the_commands_are_the_revisions_own(repo):
    directory, _ = check_out(Revision.resolve("HEAD~1", repo), repo / "var" / "bench", repo)
    assert own_commands(directory) == (["web", "one"], ["shim", "one"])


def _settings(**changes) -> Settings:
    defaults = dict(
        repeats=1,
        seconds=1,
        warmup=0,
        selected={"http", "tcp", "hot-symbol"},
        loadgen_cpus=None,
        cpus=[0, 1],
        default_workers=2,
        fresh=False,
    )
    return Settings(**{**defaults, **changes})


def test_twins_follow_their_points_in_the_plan(repo):
    revision = Revision.resolve("HEAD~1", repo)
    points, _ = plan(_settings(baseline="HEAD~1"), revision)
    assert list(points) == ["http", "http@base", "tcp", "tcp@base", "hot-symbol"]
    twin = points["tcp@base"]
    assert twin.baseline and not points["tcp"].baseline
    assert twin.label == f"{points['tcp'].label}, baseline {revision.short}"
    assert twin.service_state == points["tcp"].service_state


def test_only_chosen_points_get_twins_and_none_without_a_baseline(repo):
    revision = Revision.resolve("HEAD", repo)
    settings = _settings(selected={"http"}, baseline_points=frozenset({"http", "hot-symbol"}))
    assert list(plan(settings, revision)[0]) == ["http", "http@base"]
    assert list(plan(_settings(), None)[0]) == ["http", "tcp", "hot-symbol"]


def test_settings_read_the_baseline_from_the_environment():
    environ = {"BENCH_BASELINE": "705f695", "BENCH_BASELINE_POINTS": "http, hot-symbol"}
    settings = Settings.from_env(environ)
    assert settings.baseline == "705f695"
    assert settings.baseline_points == {"http", "hot-symbol"}
    assert Settings.from_env({}).baseline is None
    assert Settings.from_env({}).baseline_points == {"http", "tcp"}


def test_which_of_a_pair_goes_first_alternates_between_rounds():
    names = ["http", "http@base", "tcp", "tcp@base", "hot-symbol"]
    assert round_order(names, 1) == names
    assert round_order(names, 2) == ["http@base", "http", "tcp@base", "tcp", "hot-symbol"]
    assert round_order(names, 3) == names
