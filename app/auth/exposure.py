"""Saying so when a listener without authentication can be reached from elsewhere (SPEC §8).

With authentication off anyone who can connect may act for any account, so
the listeners default to loopback; started on another address, each says so
once, naming the setting that turns authentication on.
"""

import ipaddress


def exposure_warning(listener: str, host: str, auth: bool) -> str | None:
    """The warning for `listener` on `host`, or None when it is loopback or auth is on."""
    if auth or _loopback(host):
        return None
    return (
        f"{listener} listens on {host or '*'} with authentication off: anyone who can reach it "
        "can act for any account and create cash and shares. Set EXCHANGE_AUTH=on "
        "(README: Authentication), or listen on 127.0.0.1"
    )


def _loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name, or the wildcard "": reachable from elsewhere, as far as we know
        return False
