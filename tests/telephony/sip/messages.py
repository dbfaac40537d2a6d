"""SIP requests as a trunk (or sipp) sends them, for the socket-free tests."""

from __future__ import annotations

CALLER = ("192.0.2.10", 5060)

OFFER = (
    "v=0\r\no=user1 53655765 2353687637 IN IP4 192.0.2.10\r\ns=-\r\n"
    "c=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 6000 RTP/AVP 8 0 101\r\n"
    "a=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-11,16\r\n"
)


def request(
    method: str,
    *,
    call_id: str = "call-1@192.0.2.10",
    cseq: int = 1,
    branch: str = "z9hG4bK-1",
    to_tag: str = "",
    body: str = "",
    uri: str = "sip:+15550100@192.0.2.1:5060",
    extra: str = "",
    cseq_method: str = "",
) -> bytes:
    to = "<sip:+15550100@192.0.2.1>" + (f";tag={to_tag}" if to_tag else "")
    text = (
        f"{method} {uri} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 192.0.2.10:5060;branch={branch}\r\n"
        'From: "Caller" <sip:+15551234@192.0.2.10>;tag=caller-tag\r\n'
        f"To: {to}\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq} {cseq_method or method}\r\n"
        "Contact: <sip:caller@192.0.2.10:5060>\r\n"
        "Max-Forwards: 70\r\n"
        f"{extra}"
        + ("Content-Type: application/sdp\r\n" if body else "")
        + f"Content-Length: {len(body.encode())}\r\n\r\n{body}"
    )
    return text.encode()


def invite(**kwargs: object) -> bytes:
    kwargs.setdefault("body", OFFER)
    return request("INVITE", **kwargs)  # type: ignore[arg-type]
