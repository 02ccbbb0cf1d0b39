"""The database as the web tier sees it: its outages logged once, not per request."""

import logging

from app.outage import Outage

log = logging.getLogger("app.web.database")


class DatabaseOutage(Outage):
    def __init__(self, **settings):
        super().__init__("database", log, **settings)
