"""A minimal SIP user agent client with RTP media (asyncio; messages written by hand, so that
a mistake of the service's parser cannot hide behind a shared one).

The phone sends a 20 ms packet every 20 ms (what it was asked to say, else μ-law silence),
keeps every packet it receives with its arrival time, answers a BYE from the far end with
200, and retransmits its INVITE/BYE/CANCEL on T1 until a response comes (RFC 3261 §17.1).
Memory: what it hears is kept whole (one call of a test: 8 KB per second).
"""

from __future__ import annotations

import asyncio
import os
import struct
import time
import wave
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from service.audio.g711 import ulaw_to_pcm16

__all__ = ["HeardPacket", "SipPhone"]

T1 = 0.5
SILENCE = b"\xff" * 160
DIGITS = "0123456789*#"


@dataclass(frozen=True, slots=True)
class HeardPacket:
    at: float  # monotonic arrival time
    sequence: int
    timestamp: int
    payload_type: int
    payload: bytes

    @property
    def silent(self) -> bool:
        return self.payload.count(0xFF) + self.payload.count(0x7F) == len(self.payload)


@dataclass(slots=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


def _parse_response(data: bytes) -> tuple[str, Response | None, dict[str, str]]:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode(errors="replace").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), value.strip())
    if lines[0].startswith("SIP/2.0 "):
        return "", Response(int(lines[0].split(" ")[1]), headers, body), headers
    return lines[0].split(" ")[0], None, headers


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, on_datagram) -> None:  # type: ignore[no-untyped-def]
        self.on_datagram = on_datagram

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        self.on_datagram(data, addr)


class SipPhone:
    def __init__(
        self,
        server: tuple[str, int],
        *,
        to_user: str = "+15550100",
        from_user: str = "+15551234",
        host: str = "127.0.0.1",
        telephone_event: int = 101,
        offer_payload_types: str = "0 101",
        drop_every: int = 0,
        swap_every: int = 0,
    ) -> None:
        """``drop_every=20`` loses every 20th audio packet (5 %); ``swap_every=10`` sends
        every 10th packet after the one behind it (reordering on the path)."""
        self.server = server
        self.to_user = to_user
        self.from_user = from_user
        self.host = host
        self.telephone_event = telephone_event
        self.offer_payload_types = offer_payload_types
        self.drop_every = drop_every
        self.swap_every = swap_every
        self._held_back: bytes | None = None
        self.dropped_packets = 0
        self.call_id = f"{os.urandom(8).hex()}@{host}"
        self.from_tag = os.urandom(4).hex()
        self.to_header = f"<sip:{to_user}@{server[0]}>"
        self.cseq = 0
        self.responses: list[Response] = []
        self._waiting: dict[str, asyncio.Future[Response]] = {}
        self._provisional: dict[str, asyncio.Event] = {}
        self.remote_rtp: tuple[str, int] | None = None
        self.heard: list[HeardPacket] = []
        self.ended_by_server = asyncio.Event()
        self.requests_received: list[str] = []
        self.refer_to = ""
        self.answering = False
        self.challenge: tuple[str, str] | None = None
        self.nonces: set[str] = set()
        self.invites_answered = 0
        # What the NOTIFYs of a REFER say: first the progress, then the outcome.
        self.transfer_outcome = ("SIP/2.0 100 Trying", "SIP/2.0 200 OK")
        self._say: deque[bytes] = deque()
        self._sip: asyncio.DatagramTransport | None = None
        self._rtp: asyncio.DatagramTransport | None = None
        self._pacer: asyncio.Task[None] | None = None
        self._seq = 0
        self._ts = 0
        self._ssrc = int.from_bytes(os.urandom(4), "big")
        self.sent_packets = 0
        self.started_at = time.monotonic()

    # --- set-up -------------------------------------------------------------------------------

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        self._sip, _ = await loop.create_datagram_endpoint(
            lambda: _Udp(self._on_sip), local_addr=(self.host, 0)
        )
        self._rtp, _ = await loop.create_datagram_endpoint(
            lambda: _Udp(self._on_rtp), local_addr=(self.host, 0)
        )

    @property
    def sip_port(self) -> int:
        assert self._sip is not None
        return self._sip.get_extra_info("sockname")[1]

    @property
    def rtp_port(self) -> int:
        assert self._rtp is not None
        return self._rtp.get_extra_info("sockname")[1]

    def _request(
        self,
        method: str,
        *,
        body: str = "",
        cseq: int | None = None,
        branch: str = "",
        extra: str = "",
    ) -> tuple[bytes, str]:
        branch = branch or f"z9hG4bK{os.urandom(5).hex()}"
        if cseq is None:
            self.cseq += 1
            cseq = self.cseq
        uri = f"sip:{self.to_user}@{self.server[0]}:{self.server[1]}"
        text = (
            f"{method} {uri} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {self.host}:{self.sip_port};branch={branch};rport\r\n"
            f"From: <sip:{self.from_user}@{self.host}>;tag={self.from_tag}\r\n"
            f"To: {self.to_header}\r\n"
            f"Call-ID: {self.call_id}\r\n"
            f"CSeq: {cseq} {method}\r\n"
            f"Contact: <sip:{self.from_user}@{self.host}:{self.sip_port}>\r\n"
            "Max-Forwards: 70\r\n"
            f"{extra}"
            + ("Content-Type: application/sdp\r\n" if body else "")
            + f"Content-Length: {len(body)}\r\n\r\n{body}"
        )
        return text.encode(), branch

    def offer(self) -> str:
        return (
            f"v=0\r\no=- 1 1 IN IP4 {self.host}\r\ns=phone\r\nc=IN IP4 {self.host}\r\nt=0 0\r\n"
            f"m=audio {self.rtp_port} RTP/AVP {self.offer_payload_types}\r\n"
            "a=rtpmap:0 PCMU/8000\r\n"
            f"a=rtpmap:{self.telephone_event} telephone-event/8000\r\na=ptime:20\r\n"
        )

    async def invite(self, timeout: float = 15.0, *, ack: bool = True) -> Response:  # noqa: ASYNC109
        """INVITE; returns the final response (and on 200 sends ACK and starts media)."""
        if self._sip is None:
            await self.open()
        data, self.invite_branch = self._request("INVITE", body=self.offer())
        self.invite_cseq = self.cseq
        response = await self._transact(data, timeout)
        if 200 <= response.status < 300:
            self.to_header = response.headers.get("to", self.to_header)
            sdp = response.body.decode()
            address = next(line.split()[-1] for line in sdp.split("\r\n") if line.startswith("c="))
            port = next(
                int(line.split()[1]) for line in sdp.split("\r\n") if line.startswith("m=audio")
            )
            self.remote_rtp = (address, port)
            if ack:
                self.send_ack()
            self._pacer = asyncio.create_task(self._pace())
        elif response.status >= 300:
            self.send_ack(branch=self.invite_branch, to=response.headers.get("to", ""))
        return response

    def send_ack(self, *, branch: str = "", to: str = "") -> None:
        saved = self.to_header
        self.to_header = to or self.to_header
        data, _ = self._request("ACK", cseq=self.invite_cseq, branch=branch)
        self.to_header = saved
        self.send_raw(data)

    async def reinvite(self, direction: str = "sendrecv", timeout: float = 5.0) -> Response:  # noqa: ASYNC109
        """Hold (``sendonly``/``inactive``) or resume (``sendrecv``) with a re-INVITE."""
        body = self.offer() + f"a={direction}\r\n"
        data, _branch = self._request("INVITE", body=body)
        cseq = self.cseq
        response = await self._transact(data, timeout)
        if response.status == 200:
            ack, _ = self._request("ACK", cseq=cseq)
            self.send_raw(ack)
        return response

    async def cancel(self, timeout: float = 5.0) -> Response:  # noqa: ASYNC109
        data, _ = self._request("CANCEL", cseq=self.invite_cseq, branch=self.invite_branch)
        return await self._transact(data, timeout)

    async def bye(self, timeout: float = 5.0) -> Response:  # noqa: ASYNC109
        data, _ = self._request("BYE")
        response = await self._transact(data, timeout)
        await self.stop_media()
        return response

    async def request(self, method: str, body: str = "", timeout: float = 5.0) -> Response:  # noqa: ASYNC109
        data, _ = self._request(method, body=body)
        return await self._transact(data, timeout)

    def send_raw(self, data: bytes) -> None:
        assert self._sip is not None
        self._sip.sendto(data, self.server)

    async def _transact(self, data: bytes, timeout: float) -> Response:  # noqa: ASYNC109
        """Send (retransmitting on T1, §17.1) until the final response to this CSeq."""
        data.split(b" ", 1)[0].decode()
        cseq_line = next(line for line in data.split(b"\r\n") if line.startswith(b"CSeq:"))
        cseq = cseq_line.split(b":", 1)[1].strip().decode()
        final: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self._waiting[cseq] = final
        provisional = asyncio.Event()
        self._provisional[cseq] = provisional
        deadline = time.monotonic() + timeout
        interval = T1
        try:
            while True:
                if not provisional.is_set():
                    self.send_raw(data)  # §17.1.1.2: a provisional response stops retransmits
                wait = min(interval, max(0.0, deadline - time.monotonic()))
                try:
                    return await asyncio.wait_for(asyncio.shield(final), wait)
                except TimeoutError:
                    if time.monotonic() >= deadline:
                        raise
                    interval = min(interval * 2, 4.0)
        finally:
            self._waiting.pop(cseq, None)
            self._provisional.pop(cseq, None)

    def _on_sip(self, data: bytes, addr: tuple[str, int]) -> None:
        method, response, headers = _parse_response(data)
        if response is not None:
            self.responses.append(response)
            cseq = headers.get("cseq", "")
            waiting = self._waiting.get(cseq)
            if response.status < 200:
                if (event := self._provisional.get(cseq)) is not None:
                    event.set()
            elif waiting is not None and not waiting.done():
                waiting.set_result(response)
            elif response.status == 200 and cseq.endswith("INVITE"):
                self.send_ack()  # a retransmitted 200: our ACK was lost (§13.2.2.4)
            return
        self.requests_received.append(method)
        if method == "INVITE" and self.answering:
            self._answer(data, addr, headers)
            return
        if method == "REFER":
            self.refer_to = headers.get("refer-to", "")
            self._reply(data, addr, b"202 Accepted")
            asyncio.get_running_loop().create_task(self._report_transfer())
            return
        if method in ("BYE", "OPTIONS"):
            head = [line for line in data.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]]
            keep = [
                line
                for line in head
                if line.split(b":")[0].lower() in (b"via", b"from", b"to", b"call-id", b"cseq")
            ]
            reply = b"SIP/2.0 200 OK\r\n" + b"\r\n".join(keep) + b"\r\nContent-Length: 0\r\n\r\n"
            assert self._sip is not None
            self._sip.sendto(reply, addr)
            if method == "BYE":
                self.ended_by_server.set()
                asyncio.get_running_loop().create_task(self.stop_media())

    def answer_calls(self, challenge: tuple[str, str] | None = None) -> None:
        """Act as the called party: answer INVITEs (after a 407 digest challenge when
        ``challenge`` = (user, password) is given) and start media."""
        self.answering = True
        self.challenge = challenge

    def _answer(self, data: bytes, addr: tuple[str, int], headers: dict[str, str]) -> None:
        if self.challenge is not None and not self._authorised(headers):
            nonce = os.urandom(8).hex()
            self.nonces.add(nonce)
            self._reply(
                data,
                addr,
                b"407 Proxy Authentication Required",
                extra=(
                    f'Proxy-Authenticate: Digest realm="phone", nonce="{nonce}", '
                    'algorithm=MD5, qop="auth"\r\n'
                ).encode(),
                to_tag=True,
            )
            return
        body = data.partition(b"\r\n\r\n")[2].decode(errors="replace")
        lines = body.split("\r\n")
        address = next(line.split()[-1] for line in lines if line.startswith("c="))
        port = next(int(line.split()[1]) for line in lines if line.startswith("m=audio"))
        self.remote_rtp = (address, port)
        self.call_id = headers.get("call-id", "")
        self.invites_answered += 1
        sdp = self.offer().replace(f"RTP/AVP {self.offer_payload_types}", "RTP/AVP 0 101")
        self._reply(data, addr, b"200 OK", body=sdp.encode(), to_tag=True)
        if self._pacer is None:
            self._pacer = asyncio.get_running_loop().create_task(self._pace())

    def _authorised(self, headers: dict[str, str]) -> bool:
        """RFC 2617 §3.2.2 with qop=auth, MD5, written out here (a peer shares no code)."""
        import hashlib

        value = headers.get("proxy-authorization", "")
        if not value.startswith("Digest ") or self.challenge is None:
            return False
        params = {}
        for part in value[7:].split(","):
            key, _, raw = part.strip().partition("=")
            params[key] = raw.strip('"')
        if params.get("nonce") not in self.nonces or params.get("username") != self.challenge[0]:
            return False

        def md5(text: str) -> str:
            return hashlib.md5(text.encode()).hexdigest()

        ha1 = md5(f"{self.challenge[0]}:phone:{self.challenge[1]}")
        ha2 = md5(f"INVITE:{params.get('uri', '')}")
        expected = md5(
            f"{ha1}:{params['nonce']}:{params.get('nc', '')}:{params.get('cnonce', '')}:"
            f"{params.get('qop', '')}:{ha2}"
        )
        return expected == params.get("response")

    def _reply(
        self,
        request: bytes,
        addr: tuple[str, int],
        status: bytes,
        *,
        extra: bytes = b"",
        body: bytes = b"",
        to_tag: bool = False,
    ) -> None:
        head = request.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]
        names = (b"via", b"from", b"to", b"call-id", b"cseq")
        keep = [line for line in head if line.split(b":")[0].strip().lower() in names]
        if to_tag:
            keep = [
                line + b";tag=" + self.from_tag.encode()
                if line.lower().startswith(b"to:") and b"tag=" not in line
                else line
                for line in keep
            ]
            contact = f"Contact: <sip:{self.from_user}@{self.host}:{self.sip_port}>\r\n"
            extra += contact.encode()
        if body:
            extra += b"Content-Type: application/sdp\r\n"
        reply = b"SIP/2.0 " + status + b"\r\n" + b"\r\n".join(keep) + b"\r\n" + extra
        assert self._sip is not None
        self._sip.sendto(reply + f"Content-Length: {len(body)}\r\n\r\n".encode() + body, addr)

    async def _report_transfer(self) -> None:
        """RFC 3515 §2.4.4: the referred call's progress as NOTIFY message/sipfrag."""
        for frag, state in (
            (self.transfer_outcome[0], "active"),
            (self.transfer_outcome[1], "terminated;reason=noresource"),
        ):
            extra = (
                f"Event: refer\r\nSubscription-State: {state}\r\nContent-Type: message/sipfrag\r\n"
            )
            data, _ = self._request("NOTIFY", body=frag + "\r\n", extra=extra)
            data = data.replace(b"Content-Type: application/sdp\r\n", b"")
            await self._transact(data, 5.0)

    # --- media --------------------------------------------------------------------------------

    def speak(self, ulaw: bytes) -> float:
        """Queue μ-law to say; returns its length in ms."""
        for start in range(0, len(ulaw), 160):
            frame = ulaw[start : start + 160]
            self._say.append(frame + SILENCE[len(frame) :])
        return len(ulaw) / 8

    def send_dtmf(self, digit: str) -> None:
        """RFC 4733: start, two updates, and the end packet three times, one timestamp."""
        assert self._rtp is not None and self.remote_rtp is not None
        event = DIGITS.index(digit)
        timestamp = self._ts
        for duration, end in ((160, 0), (320, 0), (480, 0), (640, 0x80), (640, 0x80), (640, 0x80)):
            payload = struct.pack("!BBH", event, end | 10, duration)
            self._rtp.sendto(
                self._packet(self.telephone_event, payload, timestamp, marker=duration == 160),
                self.remote_rtp,
            )

    def send_rtp(self, data: bytes) -> None:
        assert self._rtp is not None and self.remote_rtp is not None
        self._rtp.sendto(data, self.remote_rtp)

    def _packet(
        self, payload_type: int, payload: bytes, timestamp: int, marker: bool = False
    ) -> bytes:
        header = struct.pack(
            "!BBHII",
            0x80,
            (0x80 if marker else 0) | payload_type,
            self._seq & 0xFFFF,
            timestamp & 0xFFFFFFFF,
            self._ssrc,
        )
        self._seq += 1
        return header + payload

    async def _pace(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            frame = self._say.popleft() if self._say else SILENCE
            packet = self._packet(0, frame, self._ts)
            self._ts += 160
            self.sent_packets += 1
            if self.drop_every and self.sent_packets % self.drop_every == 0:
                self.dropped_packets += 1
            elif self.swap_every and self.sent_packets % self.swap_every == 0:
                self._held_back = packet
            else:
                self.send_rtp(packet)
                if self._held_back is not None:
                    self.send_rtp(self._held_back)
                    self._held_back = None
            next_at += 0.02
            await asyncio.sleep(max(0.0, next_at - loop.time()))

    def _on_rtp(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) < 12:
            return
        _, second, sequence, timestamp, _ = struct.unpack_from("!BBHII", data)
        self.heard.append(
            HeardPacket(time.monotonic(), sequence, timestamp, second & 0x7F, data[12:])
        )

    @property
    def saying(self) -> bool:
        return bool(self._say)

    async def stop_media(self) -> None:
        if self._pacer is not None:
            self._pacer.cancel()
            self._pacer = None

    async def close(self) -> None:
        await self.stop_media()
        for transport in (self._sip, self._rtp):
            if transport is not None:
                transport.close()

    # --- what was heard -----------------------------------------------------------------------

    def heard_audio(self) -> bytes:
        return b"".join(p.payload for p in self.heard if p.payload_type == 0)

    def talk_spurts(self, max_gap_packets: int = 3) -> list[list[HeardPacket]]:
        """Runs of audio packets from a non-silent one to the last non-silent one before a
        silence longer than ``max_gap_packets`` (silent packets inside a run are kept)."""
        audio = [p for p in self.heard if p.payload_type == 0]
        spurts: list[list[HeardPacket]] = []
        start: int | None = None
        last = 0
        for index, packet in enumerate(audio):
            if packet.silent:
                if start is not None and index - last > max_gap_packets:
                    spurts.append(audio[start : last + 1])
                    start = None
                continue
            if start is None:
                start = index
            last = index
        if start is not None:
            spurts.append(audio[start : last + 1])
        return spurts

    def record(self, path: Path) -> None:
        with wave.open(str(path), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(8000)
            out.writeframes(ulaw_to_pcm16(self.heard_audio()))
