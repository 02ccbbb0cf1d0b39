"""The master secret: from the environment, a private file, or made once for the local cluster."""

import os
import threading

import pytest

from app.auth.secret import SecretError, key_secret, master_secret

LONG = "x" * 32


def test_a_keys_secret_is_derived_from_the_master_and_the_key_id_alone():
    assert key_secret(b"m" * 32, "k1") == key_secret(b"m" * 32, "k1")
    assert key_secret(b"m" * 32, "k1") != key_secret(b"m" * 32, "k2")
    assert key_secret(b"m" * 32, "k1") != key_secret(b"n" * 32, "k1")


def test_the_value_comes_first():
    assert master_secret({"EXCHANGE_AUTH_SECRET": LONG, "DATABASE_URL": "x"}) == LONG.encode()


def test_a_file_readable_by_its_owner_only(tmp_path):
    path = tmp_path / "secret"
    path.write_text(LONG + "\n")
    path.chmod(0o600)
    assert master_secret({"EXCHANGE_AUTH_SECRET_FILE": str(path)}) == LONG.encode()


def test_a_file_others_may_read_is_refused(tmp_path):
    path = tmp_path / "secret"
    path.write_text(LONG)
    path.chmod(0o640)
    with pytest.raises(SecretError, match="chmod 600"):
        master_secret({"EXCHANGE_AUTH_SECRET_FILE": str(path)})


@pytest.mark.parametrize(
    "environ",
    [
        {"EXCHANGE_AUTH_SECRET": "short"},
        {"EXCHANGE_AUTH_SECRET_FILE": "/nonexistent/secret"},
        {"DATABASE_URL": "postgresql://db/exchange"},
    ],
    ids=["too-short", "no-such-file", "a-server-of-ones-own-and-no-secret"],
)
def test_a_missing_or_unfit_secret_is_refused_naming_the_setting(environ):
    with pytest.raises(SecretError, match="EXCHANGE_AUTH_SECRET"):
        master_secret(environ)


def test_the_local_cluster_gets_one_made_once_beside_its_data_readable_by_its_owner(tmp_path):
    environ = {"EXCHANGE_PGDATA": str(tmp_path / "pgdata")}
    made = []
    racers = [
        threading.Thread(target=lambda: made.append(master_secret(environ))) for _ in range(8)
    ]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join()
    path = tmp_path / "pgdata.auth-secret"
    assert len(set(made)) == 1 and made[0] == path.read_text().strip().encode()
    assert path.stat().st_mode & 0o777 == 0o600
    assert sorted(os.listdir(tmp_path)) == ["pgdata.auth-secret"]
