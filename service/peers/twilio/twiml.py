"""What the softphone reads in our TwiML (protocols.md A.1): the ``<Connect><Stream>``, its
``<Parameter>``s, and the verbs Twilio would run after ``</Connect>``. Sans-I/O."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit, urlunsplit

__all__ = ["SoftphoneError", "TwimlPlan", "TwimlVerb", "default_connect_url", "parse_twiml"]

_MAX_TWIML_BYTES = 1_000_000  # refuse absurd webhook bodies before parsing them


class SoftphoneError(Exception):
    """The call could not be set up the way Twilio would (webhook, TwiML or WS handshake)."""


@dataclass(slots=True)
class TwimlVerb:
    """A TwiML verb, e.g. the ``<Say>`` after ``</Connect>`` (A.1)."""

    name: str
    text: str = ""
    attributes: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"<{self.name}> {self.text}".rstrip()


@dataclass(slots=True)
class TwimlPlan:
    """What the voice webhook told "Twilio" to do."""

    stream_url: str  # absolute, as written (resolved if relative)
    parameters: dict[str, str]  # <Parameter name value>, become start.customParameters (A.1)
    fallback_verbs: list[TwimlVerb]  # run only after the server closes the socket (A.1)
    stream_attributes: dict[str, str]
    warnings: list[str]  # things real Twilio would reject or mishandle (A.1, A.6)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]  # tolerate an (unneeded) XML namespace


def parse_twiml(xml_text: str | bytes, *, public_url: str) -> TwimlPlan:
    """Parse ``Response/Connect/Stream`` (A.1). ``public_url`` resolves a relative Stream url."""
    if len(xml_text) > _MAX_TWIML_BYTES:
        raise SoftphoneError("voice webhook body is too large")
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError as exc:
        raise SoftphoneError(f"TwiML is not XML ({exc}); Twilio error 12100") from exc
    if _local(root.tag) != "Response":
        raise SoftphoneError(f"TwiML root is <{_local(root.tag)}>, not <Response>")
    verbs = list(root)
    for index, verb in enumerate(verbs):
        if _local(verb.tag) != "Connect":
            continue
        stream = next((c for c in verb if _local(c.tag) == "Stream"), None)
        if stream is None:
            continue
        warnings: list[str] = []
        url = stream.get("url", "")
        if not url:
            raise SoftphoneError("<Stream> has no url")
        # A.1: url may be relative; resolve against the public (wss) URL of the webhook.
        base = urlsplit(public_url)
        ws_base = urlunsplit((_ws_scheme(base.scheme), base.netloc, base.path, "", ""))
        url = urljoin(ws_base + "/", url)
        parts = urlsplit(url)
        if parts.scheme != "wss":
            warnings.append(f"Stream url scheme is {parts.scheme!r}; Twilio supports only wss")
        if parts.query:
            warnings.append("Stream url has a query string; Twilio does not support it (A.1)")
        params: dict[str, str] = {}
        for p in stream:
            if _local(p.tag) != "Parameter":
                continue
            name, value = p.get("name", ""), p.get("value", "")
            if len(name) + len(value) >= 500:
                warnings.append(f"Parameter {name[:40]!r}: name+value >= 500 chars (A.1)")
            params[name] = value
        fallback = [
            TwimlVerb(_local(v.tag), (v.text or "").strip(), dict(v.attrib))
            for v in verbs[index + 1 :]
        ]
        return TwimlPlan(url, params, fallback, dict(stream.attrib), warnings)
    if any(_local(v.tag) == "Start" for v in verbs):
        raise SoftphoneError("TwiML uses <Start><Stream> (unidirectional); need <Connect>")
    raise SoftphoneError("TwiML has no <Connect><Stream>")


def _ws_scheme(http_scheme: str) -> str:
    return {"http": "ws", "https": "wss"}.get(http_scheme, http_scheme)


def default_connect_url(base_url: str, stream_url: str) -> str:
    """Where to really connect: base_url's scheme/host + the Stream url's path (and query).

    The TwiML names the public wss:// host; tests and local runs listen on plain ws:// on
    127.0.0.1, so the host is rewritten while the path (which routing depends on) is kept.
    """
    base, stream = urlsplit(base_url), urlsplit(stream_url)
    return urlunsplit((_ws_scheme(base.scheme), base.netloc, stream.path, stream.query, ""))
