"""Falcon media handlers: a read's report, or why it failed, in the format the client asks for.

XML unless the client prefers JSON (`Accept`), by Falcon's own reading of the
header: media ranges and their q-values, wildcards, case-insensitive.
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
    """JSON when the client prefers it to XML; XML otherwise, also when it accepts neither.

    Media types are compared case-insensitively (RFC 9110 section 8.3.1). At
    equal quality the one the client names outright wins over one it accepts
    through a wildcard: `application/json, */*` is a common default that means JSON.
    A header Falcon cannot read gets XML.
    """
    accept = req.accept.lower()
    try:
        json, xml = (falcon.mediatypes.quality(media, accept) for media in (JSON, XML))
    except ValueError:
        return XML
    if json != xml:
        return JSON if json > xml else XML
    named = {falcon.parse_header(media_range)[0].strip() for media_range in accept.split(",")}
    return JSON if json > 0 and JSON in named and XML not in named else XML
