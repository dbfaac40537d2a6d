"""SIP messages (RFC 3261 §7): parse a datagram into a request or response, and build them.

Sans-I/O and strict where it matters: a message we cannot read raises :class:`SipParseError`
(the caller answers 400 when the message had enough headers to reply to, §21.4.1, else drops
it). Header names are matched case-insensitively and compact forms are expanded (§7.3.3);
folded header lines are joined (§7.3.1). Memory: one message at a time, bounded by the
datagram size the runner accepts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = [
    "SipMessage",
    "SipParseError",
    "build_request",
    "build_response",
    "header_param",
    "name_addr_uri",
    "parse",
    "uri_user",
]

SIP_VERSION = "SIP/2.0"
MAX_HEADERS = 200  # a datagram with more is an attack or a bug, not a call

# §7.3.3 compact forms.
_COMPACT = {
    "i": "call-id",
    "f": "from",
    "t": "to",
    "v": "via",
    "m": "contact",
    "l": "content-length",
    "c": "content-type",
    "k": "supported",
    "s": "subject",
    "e": "content-encoding",
    "o": "event",
    "r": "refer-to",
}
_CANONICAL = {
    "call-id": "Call-ID",
    "cseq": "CSeq",
    "www-authenticate": "WWW-Authenticate",
}
_TOKEN = re.compile(r"^[A-Za-z0-9\-.!%*_+`'~]+$")
REQUIRED_REQUEST_HEADERS = ("via", "from", "to", "call-id", "cseq")


class SipParseError(ValueError):
    """Not a SIP message we can act on; ``replyable`` says a 400 can be sent back."""

    def __init__(self, detail: str, message: SipMessage | None = None) -> None:
        super().__init__(detail)
        self.partial = message


def _canonical(name: str) -> str:
    lower = name.lower()
    return _CANONICAL.get(lower) or "-".join(part.capitalize() for part in lower.split("-"))


@dataclass(slots=True)
class SipMessage:
    """A request (``method`` set) or a response (``status`` set). Headers keep their order;
    names are stored lower-case and written canonically."""

    method: str = ""
    uri: str = ""
    status: int = 0
    reason: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    @property
    def is_request(self) -> bool:
        return bool(self.method)

    def get(self, name: str, default: str = "") -> str:
        name = name.lower()
        for key, value in self.headers:
            if key == name:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        name = name.lower()
        return [value for key, value in self.headers if key == name]

    @property
    def call_id(self) -> str:
        return self.get("call-id")

    @property
    def cseq(self) -> tuple[int, str]:
        number, _, method = self.get("cseq").strip().partition(" ")
        return int(number), method.strip().upper()

    @property
    def branch(self) -> str:
        """The top Via's branch: with the method, it names the transaction (§17.2.3)."""
        return header_param(self.get("via"), "branch")

    def to_bytes(self) -> bytes:
        if self.is_request:
            start = f"{self.method} {self.uri} {SIP_VERSION}"
        else:
            start = f"{SIP_VERSION} {self.status} {self.reason}"
        lines = [start]
        for key, value in self.headers:
            if key != "content-length":
                lines.append(f"{_canonical(key)}: {value}")
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body


def parse(data: bytes) -> SipMessage:
    """One SIP message from one datagram (§7, §18.3: the body is Content-Length bytes)."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = data.partition(b"\n\n")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SipParseError("headers are not UTF-8") from exc
    raw_lines = text.replace("\r\n", "\n").split("\n")
    while raw_lines and not raw_lines[0].strip():
        raw_lines.pop(0)  # §7.5: leading CRLFs are ignored (keep-alives)
    if not raw_lines:
        raise SipParseError("empty datagram")
    message = _start_line(raw_lines[0])
    lines: list[str] = []
    for line in raw_lines[1:]:
        if line[:1] in (" ", "\t") and lines:
            lines[-1] += " " + line.strip()  # §7.3.1 folding
        elif line:
            lines.append(line)
    if len(lines) > MAX_HEADERS:
        raise SipParseError("too many headers")
    for line in lines:
        name, colon, value = line.partition(":")
        name = name.strip()
        if not colon or not _TOKEN.match(name):
            raise SipParseError(f"bad header line {line[:40]!r}", message)
        key = _COMPACT.get(name.lower(), name.lower())
        # §7.3.1: comma-separated Via values are separate header fields.
        if key == "via":
            message.headers.extend(("via", part.strip()) for part in value.split(","))
        else:
            message.headers.append((key, value.strip()))
    if message.is_request:
        missing = [name for name in REQUIRED_REQUEST_HEADERS if not message.get(name)]
        if missing:
            raise SipParseError(f"missing {', '.join(missing)}", message)
    length_text = message.get("content-length")
    if length_text:
        if not length_text.isdigit():
            raise SipParseError("bad Content-Length", message)
        length = int(length_text)
        if length > len(body):
            raise SipParseError("body shorter than Content-Length", message)  # §18.3
        body = body[:length]
    message.body = body
    try:
        message.cseq  # noqa: B018 - validates the header's shape
    except ValueError as exc:
        raise SipParseError("bad CSeq", message) from exc
    return message


def _start_line(line: str) -> SipMessage:
    parts = line.strip().split(" ", 2)
    if len(parts) != 3:
        raise SipParseError(f"bad start line {line[:40]!r}")
    if parts[0] == SIP_VERSION:
        if not parts[1].isdigit() or len(parts[1]) != 3:
            raise SipParseError("bad status code")
        return SipMessage(status=int(parts[1]), reason=parts[2])
    method, uri, version = parts
    if version != SIP_VERSION or not _TOKEN.match(method) or ":" not in uri:
        raise SipParseError(f"bad request line {line[:40]!r}")
    return SipMessage(method=method.upper(), uri=uri)


def header_param(value: str, name: str) -> str:
    """A ``;name=value`` parameter of a header (outside any ``<...>``), or ``""``."""
    tail = value.rsplit(">", 1)[-1]
    for part in tail.split(";")[1:]:
        key, _, param = part.partition("=")
        if key.strip().lower() == name:
            return param.strip().strip('"')
    return ""


def name_addr_uri(value: str) -> str:
    """The URI inside ``"Name" <sip:...>;tag=...`` (or a bare ``sip:...;tag=...``)."""
    if "<" in value and ">" in value:
        return value[value.index("<") + 1 : value.index(">")]
    return value.split(";", 1)[0].strip()


def uri_user(uri: str) -> str:
    """``sip:+15550001@host;params`` → ``+15550001`` (``""`` when the URI has no user)."""
    rest = uri.split(":", 1)[-1]
    user, at, _ = rest.partition("@")
    return user.split(";", 1)[0] if at else ""


def build_response(
    request: SipMessage,
    status: int,
    reason: str,
    *,
    to_tag: str = "",
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
) -> SipMessage:
    """A response copying Via, From, To, Call-ID and CSeq from ``request`` (§8.2.6.2)."""
    to = request.get("to")
    if to_tag and not header_param(to, "tag"):
        to = f"{to};tag={to_tag}"
    copied = [("via", via) for via in request.get_all("via")]
    copied += [("from", request.get("from")), ("to", to)]
    copied += [("call-id", request.call_id), ("cseq", request.get("cseq"))]
    return SipMessage(status=status, reason=reason, headers=copied + (headers or []), body=body)


def build_request(
    method: str, uri: str, headers: list[tuple[str, str]], body: bytes = b""
) -> SipMessage:
    return SipMessage(method=method, uri=uri, headers=headers, body=body)
