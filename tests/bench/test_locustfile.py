"""locustfile.py drives the real service, over HTTP and through the shim, without failures."""

import csv
import os
import subprocess
import sys

import pytest

from app.storage.cluster import PROJECT
from tests.shim.processes import running_shim

SMALL_WORKLOAD = {"LOAD_ACCOUNTS": "4", "LOAD_SYMBOLS": "2", "LOAD_CHILDREN": "2"}


def _run_locust(host: str, user: str, tcp: str, prefix) -> dict[str, str]:
    command = [
        sys.executable, "-m", "locust", "-f", "locustfile.py", "--headless", "--only-summary",
        "-u", "2", "-r", "2", "-t", "3s", "--host", host, "--csv", str(prefix), user,
    ]  # fmt: skip
    environment = dict(os.environ, **SMALL_WORKLOAD, LOAD_TCP=tcp)
    subprocess.run(command, cwd=PROJECT, env=environment, capture_output=True, timeout=90)
    with open(f"{prefix}_stats.csv", newline="") as stats:
        return next(row for row in csv.DictReader(stats) if row["Name"] == "Aggregated")


@pytest.mark.parametrize("user", ["ExchangeHttpUser", "LegacyTcpUser"])
def test_both_users_trade_without_failures(server, tmp_path, user):
    with running_shim(server) as shim:
        tcp = f"{shim.address[0]}:{shim.address[1]}"
        stats = _run_locust(server, user, tcp, tmp_path / "load")
    assert int(stats["Request Count"]) > 0
    assert int(stats["Failure Count"]) == 0
