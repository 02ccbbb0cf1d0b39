"""Falcon media handlers: a read's report, or why it failed, in the format the client asks for.

XML unless the client prefers JSON (`Accept: application/json`).
"""

import falcon
from falcon.media import BaseHandler

from app.protocol import render_json, render_report

XML = "application/xml"
JSON = falcon.MEDIA_JSON


class XmlReport(BaseHandler):
    def serialize(self, media, content_type: str) -> bytes:
        return render_report(media)


class JsonReport(BaseHandler):
    def serialize(self, media, content_type: str) -> bytes:
        return render_json(media)


HANDLERS = {XML: XmlReport(), JSON: JsonReport()}


def negotiated(req: falcon.Request) -> str:
    """JSON when the client prefers it to XML; XML otherwise, also when it accepts neither."""
    return JSON if req.client_prefers((XML, JSON)) == JSON else XML
