"""The container files agree with the code and the README (no Docker engine needed).

docker-compose.yml must be valid Compose, run the very commands `make run`
runs, and use only settings the README's configuration table documents, with
the defaults documented there.
"""

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from app.local.balancer import Replicas
from app.local.cluster import PROJECT
from app.run import SHIM_COMMAND, STOP_TIMEOUT, WEB_COMMAND

SCHEMA = json.loads((Path(__file__).parent / "compose_spec" / "compose-spec.json").read_text())
COMPOSE_TEXT = (PROJECT / "docker-compose.yml").read_text()
COMPOSE = yaml.safe_load(COMPOSE_TEXT)
DOCKERFILE = (PROJECT / "Dockerfile").read_text()
README = (PROJECT / "README.md").read_text()
SETTING = re.compile(
    r"\b(?:EXCHANGE_[A-Z_]+|DATABASE_URL|PROMETHEUS_MULTIPROC_DIR|POSTGRES_[A-Z]+)\b"
)
INTERPOLATION = re.compile(r"\$\{(\w+):-([^}]*)\}")


def compose_errors(document) -> list[str]:
    validator = jsonschema.Draft201909Validator(SCHEMA)
    return [error.message for error in validator.iter_errors(document)]


def readme_table() -> dict[str, str]:
    """The configuration table: variable name -> its default column."""
    section = README.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \| (.*?) \|", section, re.MULTILINE)
    return dict(rows)


def dockerfile_stage(name: str) -> str:
    stages = re.split(r"^FROM ", DOCKERFILE, flags=re.MULTILINE)[1:]
    return next(stage for stage in stages if stage.split("\n", 1)[0].endswith(f" AS {name}"))


def in_image(command: list[str]) -> list[str]:
    """A command of app/run.py as the image runs it: its interpreter is `python` on PATH."""
    return ["python", *command[1:]]


def test_compose_file_is_valid_compose():
    assert compose_errors(COMPOSE) == []


def test_schema_rejects_a_compose_mistake():
    broken = yaml.safe_load(COMPOSE_TEXT)
    broken["services"]["app"]["depends_on"]["db"]["condition"] = "service_ready"
    broken["services"]["shim"]["stop_grace"] = "35s"
    assert len(compose_errors(broken)) == 2


def test_compose_has_no_obsolete_version_key():
    assert "version" not in COMPOSE


def test_containers_run_the_commands_make_run_runs():
    services = COMPOSE["services"]
    assert services["app"]["command"] == in_image(WEB_COMMAND)
    assert services["shim"]["command"] == in_image(SHIM_COMMAND)
    default_command = re.findall(r"^CMD (.*)$", dockerfile_stage("service"), re.MULTILINE)
    assert [json.loads(command) for command in default_command] == [in_image(WEB_COMMAND)]


def test_every_setting_in_compose_and_dockerfile_is_in_the_readme_table():
    used = set(SETTING.findall(COMPOSE_TEXT)) | set(SETTING.findall(DOCKERFILE))
    assert used - set(readme_table()) == set()


def test_compose_defaults_are_the_documented_defaults():
    documented = readme_table()
    for name, default in INTERPOLATION.findall(COMPOSE_TEXT):
        literal = re.fullmatch(r"`([^`]*)`", documented.get(name, ""))
        if literal:
            assert default == literal.group(1), name


@pytest.mark.parametrize("service", ["app", "shim"])
def test_stop_grace_period_covers_graceful_shutdown(service):
    settings = (PROJECT / "gunicorn.conf.py").read_text()
    graceful = int(re.search(r"^graceful_timeout = (\d+)$", settings, re.MULTILINE).group(1))
    assert COMPOSE["services"][service]["stop_grace_period"] == f"{STOP_TIMEOUT}s"
    assert STOP_TIMEOUT > graceful


def test_database_health_check_uses_tcp():
    assert "pg_isready -h 127.0.0.1" in " ".join(COMPOSE["services"]["db"]["healthcheck"]["test"])


def test_services_start_in_order_of_health():
    services = COMPOSE["services"]
    assert services["app"]["depends_on"] == {"db": {"condition": "service_healthy"}}
    assert services["shim"]["depends_on"] == {"app": {"condition": "service_healthy"}}
    assert services["shim"]["environment"]["EXCHANGE_SHIM_UPSTREAM"] == "http://app:8000/"


def test_load_generator_runs_the_locustfile_only_on_request():
    locust = COMPOSE["services"]["locust"]
    assert locust["profiles"] == ["load"]
    assert locust["command"][:3] == ["locust", "-f", "locustfile.py"]


def test_image_runs_as_a_normal_user():
    users = re.findall(r"^USER (\S+)$", dockerfile_stage("service"), re.MULTILINE)
    assert users and users[-1] not in ("root", "0")


def test_every_setting_the_code_reads_is_in_the_readme_table():
    sources = [*(PROJECT / "app").rglob("*.py"), PROJECT / "gunicorn.conf.py"]
    quoted = re.compile(rf"[\"']({SETTING.pattern})[\"']")
    read = {name for source in sources for name in quoted.findall(source.read_text())}
    assert "EXCHANGE_SHIM_UPSTREAM" in read
    assert read - set(readme_table()) == set()


def test_the_cluster_profile_runs_replicas_of_make_run_behind_haproxy():
    services = COMPOSE["services"]
    web, balancer = services["web"], services["balancer"]
    assert web["profiles"] == balancer["profiles"] == ["cluster"]
    assert web["command"] == ["python", "-m", "app.run"]
    assert web["environment"]["DATABASE_URL"] == services["app"]["environment"]["DATABASE_URL"]
    assert balancer["image"].startswith("haproxy:")
    assert balancer["volumes"] == ["./haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro"]
    assert balancer["depends_on"] == {"web": {"condition": "service_healthy"}}


def test_haproxy_has_a_server_slot_for_every_replica():
    replicas = COMPOSE["services"]["web"]["deploy"]["replicas"]
    servers = Replicas("web", replicas).servers(8000)[0]
    assert servers in (PROJECT / "haproxy.cfg").read_text()


def test_the_replicas_drain_within_their_stop_grace_period():
    web = COMPOSE["services"]["web"]
    drain = float(INTERPOLATION.search(web["environment"]["EXCHANGE_DRAIN_SECONDS"]).group(2))
    assert float(web["stop_grace_period"].removesuffix("s")) > STOP_TIMEOUT + drain
