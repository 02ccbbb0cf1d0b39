"""`make cluster`: instances behind HAProxy, over HTTP and the legacy port, in clear or TLS."""

import os
import socket
import ssl
import subprocess
import sys

import pytest
import requests
import trustme

from app.local.cluster import PROJECT
from tests.cluster import running_cluster
from tests.shim.wire import children, converse, framed, read_to_end

CREATE = b'<create><account id="42" balance="7"/></create>'


def test_instances_serve_both_protocols_behind_haproxy_and_stop_on_ctrl_c(
    database_url, engine, tmp_path
):
    with running_cluster(tmp_path / "cluster.log", DATABASE_URL=database_url) as cluster:
        pids = [pid for number in (1, 2, 3) for pid in cluster.instance_pids(number)]
        assert len(pids) == 3 * 3  # a gunicorn master, its worker and a shim each
        reply = requests.post(f"{cluster.web_url}/", data=CREATE, timeout=10)
        assert reply.status_code == 200 and b'<created id="42"/>' in reply.content
        assert children(converse(cluster.tcp_address, framed(b"<create/>"))) == []
        assert set(cluster.states().values()) == {"UP"} and len(cluster.states()) == 6
        assert cluster.interrupt() == 0
    assert not [pid for pid in pids if os.path.exists(f"/proc/{pid}")]


def test_without_haproxy_make_cluster_says_how_to_install_it_and_stops():
    result = subprocess.run(
        [sys.executable, "-m", "app.cluster"],
        cwd=PROJECT,
        env={**os.environ, "EXCHANGE_HAPROXY": "no-such-haproxy"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "make cluster needs HAProxy: install it with `sudo apt-get install haproxy`" in (
        result.stderr
    )


def test_with_a_certificate_haproxy_speaks_tls_on_both_fronts(database_url, engine, tmp_path):
    authority = trustme.CA()
    certificate = authority.issue_cert("localhost", "127.0.0.1")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    certificate.cert_chain_pems[0].write_to_path(str(cert))
    certificate.private_key_pem.write_to_path(str(key))
    trusted = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(trusted))
    with running_cluster(
        tmp_path / "cluster.log",
        hosts=1,
        DATABASE_URL=database_url,
        EXCHANGE_TLS_CERT=str(cert),
        EXCHANGE_TLS_KEY=str(key),
    ) as cluster:
        https = cluster.web_url.replace("http://", "https://")
        reply = requests.post(f"{https}/", data=CREATE, timeout=10, verify=str(trusted))
        assert b'<created id="42"/>' in reply.content
        context = ssl.create_default_context(cafile=str(trusted))
        with (
            socket.create_connection(cluster.tcp_address, timeout=10) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            tls.sendall(framed(b"<create/>"))
            assert children(read_to_end(tls)) == []
        with pytest.raises(requests.ConnectionError):  # no clear text on the TLS front
            requests.post(f"{cluster.web_url}/", data=CREATE, timeout=5)
