"""`python -m app.shim`: serve the legacy TCP protocol until SIGTERM or SIGINT.

Every flag defaults to its environment variable (docs/shim.md lists them).
"""

import argparse
import asyncio
import logging
import os
import resource
import signal
import sys
from dataclasses import fields

import uvloop

from app.auth.exposure import exposure_warning
from app.config import switch
from app.shim.config import SETTINGS, ShimConfig
from app.shim.server import Shim

LOG_FORMAT = "%(asctime)s [shim] [%(levelname)s] %(message)s"
SPARE_FILE_DESCRIPTORS = 64  # log files, the listener, connections being set up

log = logging.getLogger("app.shim")


def main(argv: list[str] | None = None, environ=os.environ) -> int:
    config, log_level = parse_args(argv, environ)
    logging.basicConfig(level=log_level.upper(), format=LOG_FORMAT)
    try:
        warning = exposure_warning("the shim", config.host, switch(environ, "EXCHANGE_AUTH"))
    except ValueError as error:
        log.error("cannot start: %s", error)
        return 1
    if warning:
        log.warning("%s", warning)
    _raise_file_descriptor_limit(config.max_connections + config.concurrency)
    try:
        # uvloop runs the event loop and the socket transports in C: fewer
        # interpreted steps per connection than asyncio's own loop.
        uvloop.run(_serve_until_signalled(config))
    except OSError as error:
        log.error("cannot serve on %s:%d: %s", config.host, config.port, error)
        return 1
    return 0


def parse_args(argv: list[str] | None, environ=os.environ) -> tuple[ShimConfig, str]:
    parser = argparse.ArgumentParser(
        prog="python -m app.shim",
        description="Serve the legacy length-prefixed TCP protocol in front of the HTTP service.",
    )
    try:
        defaults = ShimConfig.from_env(environ)
    except ValueError as error:
        parser.error(f"bad environment setting: {error}")
    for field in fields(ShimConfig):
        setting = SETTINGS[field.name]
        kind = (
            {"action": argparse.BooleanOptionalAction}
            if field.type is bool
            else {"type": field.type}
        )
        parser.add_argument(
            f"--{field.name.replace('_', '-')}",
            default=getattr(defaults, field.name),
            help=f"{setting.meaning} ({setting.variable})",
            **kind,
        )
    parser.add_argument(
        "--log-level",
        default=environ.get("EXCHANGE_LOG_LEVEL", "info"),
        help="debug logs one line per request (EXCHANGE_LOG_LEVEL)",
    )
    settings = vars(parser.parse_args(argv))
    log_level = settings.pop("log_level")
    try:
        return ShimConfig(**settings), log_level
    except ValueError as error:
        parser.error(str(error))


def _raise_file_descriptor_limit(sockets: int) -> None:
    """Many systems give processes a soft limit of 1024 files, fewer than the defaults need."""
    needed = sockets + SPARE_FILE_DESCRIPTORS
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        if hard == resource.RLIM_INFINITY or hard >= needed:
            resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
        else:
            log.warning(
                "only %d file descriptors for %d sockets: lower --max-connections", hard, sockets
            )


async def _serve_until_signalled(config: ShimConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await Shim(config).serve(stop)


if __name__ == "__main__":
    sys.exit(main())
