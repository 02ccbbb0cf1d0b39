"""locustfile.py drives the real service, over HTTP and through the shim, without failures."""

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.local.cluster import PROJECT
from bench import streams
from bench.run import aggregated
from bench.workload import READ
from tests.shim.processes import running_shim

SMALL_WORKLOAD = {"LOAD_ACCOUNTS": "4", "LOAD_SYMBOLS": "2", "LOAD_CHILDREN": "2"}


def _run_locust(host: str, users: list[str], tcp: str, prefix, **settings) -> dict[str, dict]:
    """locust's statistics, a row per request name."""
    clients = str(len(users) + 1)
    command = [
        sys.executable, "-m", "locust", "-f", "locustfile.py", "--headless", "--only-summary",
        "-u", clients, "-r", clients, "-t", "3s", "--host", host, "--csv", str(prefix), *users,
    ]  # fmt: skip
    environment = dict(os.environ, **SMALL_WORKLOAD, LOAD_TCP=tcp, **settings)
    subprocess.run(command, cwd=PROJECT, env=environment, capture_output=True, timeout=90)
    with open(f"{prefix}_stats.csv", newline="") as stats:
        return {row["Name"]: row for row in csv.DictReader(stats)}


@pytest.mark.parametrize("user", ["ExchangeHttpUser", "LegacyTcpUser"])
def test_both_users_trade_without_failures(server, tmp_path, user):
    with running_shim(server) as shim:
        tcp = f"{shim.address[0]}:{shim.address[1]}"
        stats = _run_locust(server, [user], tcp, tmp_path / "load")["Aggregated"]
    assert int(stats["Request Count"]) > 0
    assert int(stats["Failure Count"]) == 0


def test_market_data_readers_poll_and_traders_read_their_statements(server, tmp_path):
    prefix = tmp_path / "load"
    users = ["ExchangeHttpUser", "MarketDataUser"]
    stats = _run_locust(server, users, "127.0.0.1:9", prefix, LOAD_READERS="1")  # no TCP user
    for name in ("read: book", "read: trades", "read: statement"):
        assert int(stats[name]["Request Count"]) > 0, name
    assert int(stats["Aggregated"]["Failure Count"]) == 0
    trading = aggregated(Path(f"{prefix}_stats.csv"))
    reads = sum(int(stats[name]["Request Count"]) for name in stats if name.startswith(READ))
    assert trading["Request Count"] == int(stats["Aggregated"]["Request Count"]) - reads
    assert trading["book_p99_ms"] == float(stats["read: book"]["99%"])


def test_stream_users_follow_the_traded_symbols_and_note_when_trades_reach_them(
    server, engine, tmp_path
):
    prefix, arrivals = tmp_path / "load", tmp_path / "arrivals.csv"
    users = ["ExchangeHttpUser", "MarketStreamUser"]
    settings = {"LOAD_STREAMS": "1", "LOAD_STREAM_LOG": str(arrivals)}  # and 2 traders
    stats = _run_locust(server, users, "127.0.0.1:9", prefix, **settings)
    assert int(stats["read: stream"]["Request Count"]) == 1
    assert int(stats["Aggregated"]["Failure Count"]) == 0

    def query(sql: str) -> str:
        with engine.raw_connection() as connection, connection.cursor() as cursor:
            answer = io.StringIO()
            cursor.copy_expert(sql, answer)
            return answer.getvalue()

    reached = streams.delays(arrivals, query)
    assert reached.deliveries > 0
    assert 0 < reached.p50_s <= reached.p99_s <= reached.max_s < 5
