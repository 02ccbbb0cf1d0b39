"""The legacy TCP protocol (SPEC §5.2) in front of the HTTP service: `python -m app.shim`.

`config` holds the settings, `framing` reads length-prefixed requests,
`upstream` forwards them over HTTP, `server` ties both to the listening socket.
"""

from app.shim.config import ShimConfig
from app.shim.server import Shim

__all__ = ["Shim", "ShimConfig"]
