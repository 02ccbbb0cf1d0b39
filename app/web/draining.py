"""Draining: on SIGTERM an instance behind a balancer first fails readiness, then stops.

gunicorn's master, on SIGTERM, closes its listeners at once: connections the
balancer opens meanwhile are refused (it tries another host), and those
already waiting in a listener's backlog are reset, mid-request for the
balancer, which must not resend a POST it has sent. So, with
EXCHANGE_DRAIN_SECONDS set, the master first raises a flag its workers share:
`/readyz` answers 503 while every request is still served, the balancer's
checks take the instance out, and only then does the graceful stop begin. A
second SIGTERM ends the wait.
"""

import mmap
import signal
import threading

# One byte of memory shared with the workers, which the master forks after
# importing this module (gunicorn.conf.py); 1 while draining.
_flag = mmap.mmap(-1, 1)


def draining() -> bool:
    return _flag[0] == 1


def drain_before_stopping(server, seconds: float) -> None:
    """Make gunicorn's master (`server`, its Arbiter) drain for `seconds` on SIGTERM."""
    stop = server.handle_term

    def handle_term() -> None:
        if draining():  # the drain is over, or a second SIGTERM
            stop()
        _flag[0] = 1
        server.log.info("draining: /readyz answers 503 for %g s, then stopping", seconds)
        threading.Timer(seconds, server.signal, (signal.SIGTERM, None)).start()

    server.handle_term = handle_term
