"""HAProxy's configuration, checked by HAProxy itself (`haproxy -c`), for both deployments."""

import subprocess

import pytest
import trustme

from app.local.balancer import LoopbackHosts, Replicas, configuration, haproxy_program
from app.local.cluster import PROJECT

LOOPBACK = LoopbackHosts(["127.0.0.2", "127.0.0.3"])
FRONTS = ("127.0.0.1:8000", "127.0.0.1:12345", "127.0.0.1:8404", 8000, 12345)


def haproxy_accepts(text: str, tmp_path) -> tuple[bool, str]:
    settings = tmp_path / "haproxy.cfg"
    settings.write_text(text)
    result = subprocess.run(
        [haproxy_program(), "-c", "-f", str(settings)], capture_output=True, text=True
    )
    return result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("hosts", [LOOPBACK, Replicas("web", 3)], ids=["make-cluster", "compose"])
def test_haproxy_accepts_the_configuration(hosts, tmp_path):
    assert haproxy_accepts(configuration(hosts, *FRONTS), tmp_path) == (
        True,
        "Configuration file is valid\n",
    )


def test_haproxy_accepts_it_with_tls_on_both_fronts(tmp_path):
    certificate = trustme.CA().issue_cert("localhost")
    pem = tmp_path / "tls.pem"
    certificate.private_key_and_cert_chain_pem.write_to_path(str(pem))
    text = configuration(LOOPBACK, *FRONTS, tls_pem=str(pem))
    assert text.count(f"ssl crt {pem}") == 2
    assert haproxy_accepts(text, tmp_path)[0]


def test_haproxy_refuses_a_broken_configuration(tmp_path):
    broken = configuration(LOOPBACK, *FRONTS).replace("balance roundrobin", "balance sideways")
    assert not haproxy_accepts(broken, tmp_path)[0]


def test_only_a_failed_connection_is_retried_never_a_request_sent():
    text = configuration(LOOPBACK, *FRONTS)
    assert [line.strip() for line in text.splitlines() if "retry-on" in line] == [
        "retry-on conn-failure"
    ]


def test_the_compose_profile_uses_the_same_configuration():
    committed = (PROJECT / "haproxy.cfg").read_text()
    compose_fronts = ("*:8000", "*:12345", "*:8404", 8000, 12345)
    assert committed == configuration(Replicas("web", 3), *compose_fronts)
