"""SPEC §6: "nothing may be violated under any interleaving, crash or restart".

Each test breaks one part under load: a gunicorn worker, PostgreSQL, the web
service behind the shim. Clients get clear errors meanwhile, never a hang or
a bare 500; the books balance afterwards and every acknowledged order exists.
"""

import os
import signal
import time

import requests

from app.local.cluster import free_port
from app.storage.engine import database_engine
from tests.integrity.books import broken_rules, stored_order_ids
from tests.integrity.traffic import (
    ACCOUNTS,
    DATABASE_DOWN,
    OPENING,
    SYMBOLS,
    Tolerance,
    background_load,
    post_create,
)
from tests.shim.processes import running_shim
from tests.shim.wire import children, converse, error_text, framed
from tests.web.servers import running_gunicorn

RESPAWN_TIMEOUT = 30.0


def wait_for_workers(server, workers: int, killed: int | None = None) -> set[int]:
    """The worker pids once `workers` are up (and `killed` is gone): the first request
    can be answered before every worker has booted."""
    deadline = time.monotonic() + RESPAWN_TIMEOUT
    while killed in (pids := server.worker_pids()) or len(pids) < workers:
        assert time.monotonic() < deadline, f"gunicorn has not {workers} workers: {pids}"
        time.sleep(0.05)
    return pids


def test_worker_killed_mid_load_leaves_no_partial_state_and_is_replaced(
    database_url, engine, tmp_path
):
    with running_gunicorn(database_url, tmp_path / "gunicorn.log") as server:
        post_create(server.url, ACCOUNTS, OPENING)
        with background_load(server.url, ACCOUNTS, SYMBOLS, Tolerance(disconnects=True)) as load:
            load.wait_for_more("answered", 50)
            victim = min(wait_for_workers(server, 2))
            os.kill(victim, signal.SIGKILL)
            wait_for_workers(server, 2, killed=victim)
            load.wait_for_more("answered", 50)
        assert requests.get(f"{server.url}/health", timeout=10).status_code == 200

    assert load.failures() == []
    assert broken_rules(engine) == []
    assert load.acknowledged_order_ids() <= stored_order_ids(engine)


def test_database_restart_gets_clear_errors_then_the_service_recovers_by_itself(
    own_cluster, tmp_path
):
    engine = database_engine(own_cluster.url(), pool_size=1)
    with running_gunicorn(own_cluster.url(), tmp_path / "gunicorn.log") as server:
        workers = wait_for_workers(server, 2)
        post_create(server.url, ACCOUNTS, OPENING)
        with background_load(server.url, ACCOUNTS, SYMBOLS, DATABASE_DOWN) as load:
            load.wait_for_more("answered", 50)
            own_cluster.stop()
            load.wait_for_more("tolerated", 20)
            assert requests.get(f"{server.url}/health", timeout=10).status_code == 503
            own_cluster.ensure_running()
            load.wait_for_more("answered", 50)
        assert server.worker_pids() == workers, "the service was restarted, not recovered"

    assert load.failures() == []
    assert broken_rules(engine) == []
    assert load.acknowledged_order_ids() <= stored_order_ids(engine)
    engine.dispose()


def test_shim_answers_errors_while_the_service_restarts_then_serves_again(
    database_url, engine, tmp_path
):
    """A real gunicorn going away and coming back (tests/shim/test_upstream.py uses a stand-in)."""
    port, log = free_port(), tmp_path / "gunicorn.log"
    account = b'<create><account id="%d" balance="1"/></create>'
    with running_gunicorn(database_url, log, port, EXCHANGE_WORKERS="1") as server:
        with running_shim(server.url) as shim:
            assert children(converse(shim.address, framed(account % 1))) == [
                ("created", {"id": "1"}, None)
            ]
            server.stop()
            assert error_text(converse(shim.address, framed(account % 2))).startswith(
                "service unavailable: "
            )
            with running_gunicorn(database_url, log, port, EXCHANGE_WORKERS="1"):
                assert children(converse(shim.address, framed(account % 3))) == [
                    ("created", {"id": "3"}, None)
                ]
    assert broken_rules(engine) == []
