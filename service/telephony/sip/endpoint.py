"""The SIP user agent server, sans-I/O (RFC 3261 §17.2 transactions, §12 dialogs, §13-15).

Feed it datagrams (:meth:`SipEndpoint.receive`) and the time (:meth:`SipEndpoint.poll`); it
returns :class:`Transmit` (bytes for an address) and call events for the runner. The runner
answers an offered call with :meth:`answer` (once the agent is ready) or :meth:`reject`, and
ends one with :meth:`hang_up`. Nothing here touches a socket or the clock.

Rules kept here (sip-and-outbound.md §2.4):
* INVITE: 100 Trying and 180 Ringing at once; 200 only when the runner answers; the 200 is
  retransmitted from T1 doubling to T2 until the ACK, and after 64·T1 without one the call
  ends with a BYE (§13.3.1.4). A retransmitted INVITE gets the last response again; a
  re-INVITE (To-tag ours, higher CSeq) gets our SDP again and never starts a second call.
* CANCEL → 200 and 487 for the INVITE (§9.2); BYE → 200 (§15.1.2); OPTIONS → 200 with Allow
  (§11.2); other methods 405; requests for an unknown dialog 481; an unanswerable offer 488.
* Access: a source outside the allow-list gets a digest challenge when credentials are set,
  otherwise 403. An unparseable datagram gets 400 when it had enough headers to answer.

Memory: one small record per call, kept 64·T1 after it ends to absorb retransmissions.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable

from service.telephony.sip.dialog import (
    T1,
    T2,
    Action,
    Address,
    CallConfirmed,
    CallEnded,
    CallOffered,
    Dialog,
    MediaChanged,
    PendingRequest,
    RequestAnswered,
    TransferProgress,
    Transmit,
)
from service.telephony.sip.digest import DigestChallenger
from service.telephony.sip.message import (
    SipMessage,
    SipParseError,
    build_request,
    build_response,
    header_param,
    name_addr_uri,
    parse,
    uri_user,
)
from service.telephony.sip.outbound import OutboundCalls
from service.telephony.sip.sdp import SdpError, parse_offer

__all__ = [
    "T1",
    "T2",
    "Action",
    "CallConfirmed",
    "CallEnded",
    "CallOffered",
    "MediaChanged",
    "RequestAnswered",
    "SipEndpoint",
    "TransferProgress",
    "Transmit",
]

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, NOTIFY"


class SipEndpoint(OutboundCalls):
    def __init__(
        self,
        *,
        contact_host: str,
        contact_port: int,
        allowed_sources: tuple[str, ...] = (),
        credentials: tuple[str, str] | None = None,
        random_token: Callable[[], str] = lambda: os.urandom(6).hex(),
    ) -> None:
        self.contact_host = contact_host
        self.contact_port = contact_port
        self.allowed = [ipaddress.ip_network(cidr, strict=False) for cidr in allowed_sources]
        self.digest = DigestChallenger(*credentials) if credentials else None
        self.random_token = random_token
        self.calls: dict[str, Dialog] = {}
        # Counters (monotonic).
        self.malformed = 0
        self.refused = 0

    # --- input -----------------------------------------------------------------------------

    def receive(self, data: bytes, source: Address, now: float) -> list[Action]:
        if not data.strip(b"\r\n\0 "):
            return []  # RFC 5626 §4.4.1 keep-alive
        try:
            message = parse(data)
        except SipParseError as exc:
            self.malformed += 1
            partial = exc.partial
            if partial is not None and partial.is_request and partial.method != "ACK":
                if all(partial.get(h) for h in ("via", "from", "to", "call-id")):
                    # §21.4.1: a CSeq we could not read is copied back as it came.
                    bad = build_response(partial, 400, "Bad Request")
                    return [self._send(bad, source)]
            return []
        if not message.is_request:
            return self._on_response(message, now)
        return self._on_request(message, source, now)

    def poll(self, now: float) -> list[Action]:
        """Retransmit what is due, give up on what timed out, forget old calls."""
        actions: list[Action] = []
        for call in list(self.calls.values()):
            if call.state == "calling":
                actions += self._poll_calling(call, now)
            if call.state == "answered":
                if now >= call.give_up_at:
                    # §13.3.1.4: no ACK within 64·T1: the dialog is confirmed then torn down.
                    actions += self._bye(call, now)
                    actions.append(CallEnded(call.call_id, "no_ack"))
                elif now >= call.retransmit_at:
                    actions.append(Transmit(call.last_response, call.source))
                    call.retransmit_interval = min(call.retransmit_interval * 2, T2)
                    call.retransmit_at = now + call.retransmit_interval
            request = call.pending
            if request is not None:
                if now >= request.give_up_at:
                    call.pending = None
                    actions.append(RequestAnswered(call.call_id, request.method, 0))
                elif now >= request.next_at:
                    actions.append(Transmit(request.data, call.source))
                    request.interval = min(request.interval * 2, T2)
                    request.next_at = now + request.interval
            if call.state == "ended" and call.pending is None and now >= call.forget_at:
                del self.calls[call.call_id]
        return actions

    @property
    def next_deadline(self) -> float | None:
        times = [c.retransmit_at for c in self.calls.values() if c.state == "answered"]
        times += [
            min(c.retransmit_at, c.give_up_at) for c in self.calls.values() if c.state == "calling"
        ]
        times += [c.pending.next_at for c in self.calls.values() if c.pending is not None]
        times += [c.forget_at for c in self.calls.values() if c.state == "ended"]
        return min(times, default=None)

    # --- the runner's decisions --------------------------------------------------------------

    def answer(self, call_id: str, sdp: bytes, now: float) -> list[Action]:
        call = self.calls.get(call_id)
        if call is None or call.state != "offered":
            return []  # cancelled while the agent got ready
        call.state = "answered"
        call.answer_sdp = sdp
        call.retransmit_at = now + T1
        call.retransmit_interval = T1
        call.give_up_at = now + 64 * T1
        return [self._reply(call, call.invite, 200, "OK", body=sdp)]

    def reject(self, call_id: str, status: int, reason: str, now: float) -> list[Action]:
        call = self.calls.get(call_id)
        if call is None or call.state != "offered":
            return []
        self._end(call, now)
        return [self._reply(call, call.invite, status, reason)]

    def hang_up(self, call_id: str, now: float) -> list[Action]:
        """End the call from our side: BYE once answered, 480 while still ringing."""
        call = self.calls.get(call_id)
        if call is None or call.state == "ended":
            return []
        if call.state == "offered":
            return self.reject(call_id, 480, "Temporarily Unavailable", now)
        if call.state == "calling":
            self._end(call, now)
            return [self._cancel(call)]
        return self._bye(call, now)

    # --- requests ----------------------------------------------------------------------------

    def _on_request(self, request: SipMessage, source: Address, now: float) -> list[Action]:
        method = request.method
        call = self.calls.get(request.call_id)
        if method == "ACK":
            return self._on_ack(call, request)
        in_dialog = bool(header_param(request.get("to"), "tag"))
        if call is not None and (in_dialog or method in ("INVITE", "CANCEL")):
            if source[0] != call.source[0] and not self._allowed(source[0]):
                self.refused += 1
                return [self._send(build_response(request, 403, "Forbidden"), source)]
            return self._in_call(call, request, source, now)
        if in_dialog or method in ("BYE", "CANCEL"):
            return [
                self._send(build_response(request, 481, "Call/Transaction Does Not Exist"), source)
            ]
        refusal = self._admission(request, source, now)
        if refusal is not None:
            return [refusal]
        if method == "OPTIONS":
            return [self._send(build_response(request, 200, "OK", headers=self._allow()), source)]
        if method != "INVITE":
            return [
                self._send(
                    build_response(request, 405, "Method Not Allowed", headers=self._allow()),
                    source,
                )
            ]
        return self._new_invite(request, source, now)

    def _admission(self, request: SipMessage, source: Address, now: float) -> Transmit | None:
        if self._allowed(source[0]):
            return None
        if self.digest is not None:
            authorization = request.get("authorization")
            if authorization and self.digest.check(authorization, request.method, now=None):
                return None
            challenge = self.digest.challenge()
            response = build_response(
                request,
                401,
                "Unauthorized",
                to_tag=self.random_token(),
                headers=[("www-authenticate", challenge)],
            )
            return self._send(response, source)
        self.refused += 1
        return self._send(build_response(request, 403, "Forbidden"), source)

    def _allowed(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.allowed)

    def _new_invite(self, request: SipMessage, source: Address, now: float) -> list[Action]:
        try:
            offer = parse_offer(request.body)
        except SdpError:
            offer = None
        if offer is None or offer.audio_pt is None:
            response = build_response(
                request, 488, "Not Acceptable Here", to_tag=self.random_token()
            )
            return [self._send(response, source)]
        call = Dialog(request.call_id, request, source, self.random_token(), offer)
        call.routes = request.get_all("record-route")
        self.calls[call.call_id] = call
        headers = {name: value for name, value in request.headers if name.startswith("x-")}
        return [
            self._send(build_response(request, 100, "Trying"), source),
            self._reply(call, request, 180, "Ringing"),
            CallOffered(
                call.call_id,
                from_user=uri_user(name_addr_uri(request.get("from"))),
                to_user=uri_user(request.uri) or uri_user(name_addr_uri(request.get("to"))),
                offer=offer,
                source=source,
                headers=headers,
            ),
        ]

    def _in_call(
        self, call: Dialog, request: SipMessage, source: Address, now: float
    ) -> list[Action]:
        method = request.method
        if method == "CANCEL":
            ok = self._send(build_response(request, 200, "OK"), source)
            if call.state != "offered" or request.branch != call.invite.branch:
                return [ok]  # §9.2: too late (answered) or not our transaction: no effect
            self._end(call, now)
            terminated = self._reply(call, call.invite, 487, "Request Terminated")
            return [ok, terminated, CallEnded(call.call_id, "caller_cancelled")]
        if method == "INVITE":
            same = request.cseq == call.invite.cseq and request.branch == call.invite.branch
            if same:
                return [Transmit(call.last_response, source)] if call.last_response else []
            return self._reinvite(call, request, source)
        if method == "BYE":
            ok = self._reply(call, request, 200, "OK")
            if call.state == "ended":
                return [ok]  # a retransmitted BYE
            self._end(call, now)
            return [ok, CallEnded(call.call_id, "caller_hangup")]
        if method == "OPTIONS":
            return [self._reply(call, request, 200, "OK", headers=self._allow())]
        if method == "NOTIFY" and request.get("event").split(";")[0].strip().lower() == "refer":
            ok = self._reply(call, request, 200, "OK")
            # RFC 3515 §2.4.5: the body is a message/sipfrag status line, "SIP/2.0 200 OK".
            parts = request.body.split(b" ", 2)
            if len(parts) >= 2 and parts[0].startswith(b"SIP/2.0") and parts[1].isdigit():
                return [ok, TransferProgress(call.call_id, int(parts[1]))]
            return [ok]
        return [self._reply(call, request, 405, "Method Not Allowed", headers=self._allow())]

    def _reinvite(self, call: Dialog, request: SipMessage, source: Address) -> list[Action]:
        if call.state not in ("answered", "confirmed"):
            # §14.2: a second INVITE while the first is pending.
            return [
                self._send(
                    build_response(
                        request, 500, "Server Internal Error", headers=[("retry-after", "1")]
                    ),
                    source,
                )
            ]
        try:
            offer = parse_offer(request.body) if request.body else call.offer
        except SdpError:
            return [self._reply(call, request, 488, "Not Acceptable Here")]
        call.offer = offer
        return [
            self._reply(call, request, 200, "OK", body=call.answer_sdp),
            MediaChanged(call.call_id, offer),
        ]

    def _on_ack(self, call: Dialog | None, request: SipMessage) -> list[Action]:
        if call is None or call.state != "answered":
            return []  # an ACK for a non-2xx final response or a retransmission: absorbed
        call.state = "confirmed"
        return [CallConfirmed(call.call_id)]

    # --- responses to our requests -----------------------------------------------------------

    def _on_response(self, response: SipMessage, now: float) -> list[Action]:
        call = self.calls.get(response.call_id)
        if call is not None and call.outbound and response.cseq[1] == "INVITE":
            return self._on_invite_response(call, response, now)
        if call is None or call.pending is None or response.branch != call.pending.branch:
            return []
        if response.status < 200:
            call.pending.give_up_at = now + 64 * T1  # §17.1.2.2: provisional, keep waiting
            call.pending.next_at = now + T2
            return []
        method = call.pending.method
        call.pending = None
        return [RequestAnswered(call.call_id, method, response.status)]

    # --- helpers -------------------------------------------------------------------------------

    def refer(self, call_id: str, refer_to: str, now: float) -> list[Action]:
        """RFC 3515: ask the far end to call ``refer_to`` (a SIP URI) in our place. Its
        answer comes as :class:`RequestAnswered`, its progress as :class:`TransferProgress`."""
        call = self.calls.get(call_id)
        if call is None or call.state not in ("answered", "confirmed"):
            return [RequestAnswered(call_id, "REFER", 481)]
        contact = f"<sip:{self._host_port()}>"
        extra = [("refer-to", f"<{refer_to}>"), ("referred-by", contact), ("contact", contact)]
        return self._in_dialog_request(call, "REFER", now, extra)

    def _bye(self, call: Dialog, now: float) -> list[Action]:
        self._end(call, now)
        return self._in_dialog_request(call, "BYE", now)

    def _in_dialog_request(
        self,
        call: Dialog,
        method: str,
        now: float,
        extra: list[tuple[str, str]] | None = None,
    ) -> list[Action]:
        """§12.2.1.1: our request in the dialog; one at a time (a BYE replaces a REFER)."""
        call.local_cseq += 1
        branch = f"z9hG4bK{self.random_token()}"
        invite = call.invite
        if call.outbound:
            local, remote, target = self._outbound_parties(call)
        else:
            local, remote = self._local_party(call), invite.get("from")
            target = name_addr_uri(invite.get("contact")) or name_addr_uri(invite.get("from"))
        headers = [
            ("via", f"SIP/2.0/UDP {self._host_port()};branch={branch};rport"),
            ("max-forwards", "70"),
            ("from", local),
            ("to", remote),
            ("call-id", call.call_id),
            ("cseq", f"{call.local_cseq} {method}"),
        ]
        headers += [("route", route) for route in call.routes]
        headers += extra or []
        data = build_request(method, target, headers).to_bytes()
        call.pending = PendingRequest(data, branch, method, now + T1, T1, now + 64 * T1)
        return [Transmit(data, call.source)]

    def _local_party(self, call: Dialog) -> str:
        to = call.invite.get("to")
        return to if header_param(to, "tag") else f"{to};tag={call.local_tag}"

    def _end(self, call: Dialog, now: float) -> None:
        call.state = "ended"
        call.forget_at = now + 64 * T1

    def _reply(
        self,
        call: Dialog,
        request: SipMessage,
        status: int,
        reason: str,
        *,
        headers: list[tuple[str, str]] | None = None,
        body: bytes = b"",
    ) -> Transmit:
        extra = list(headers or [])
        if status > 100:
            extra.append(("contact", f"<sip:{self._host_port()}>"))
            if request.get_all("record-route") and request is call.invite:
                extra += [("record-route", r) for r in request.get_all("record-route")]
        if body:
            extra.append(("content-type", "application/sdp"))
        response = build_response(
            request, status, reason, to_tag=call.local_tag, headers=extra, body=body
        )
        data = response.to_bytes()
        if request is call.invite:
            call.last_response = data
        return Transmit(data, call.source)

    def _send(self, response: SipMessage, address: Address) -> Transmit:
        return Transmit(response.to_bytes(), address)

    def _allow(self) -> list[tuple[str, str]]:
        return [("allow", ALLOW), ("accept", "application/sdp")]

    @property
    def contact_address(self) -> str:
        """``host:port`` others reach us at (Contact, Via)."""
        return self._host_port()

    def _host_port(self) -> str:
        host = f"[{self.contact_host}]" if ":" in self.contact_host else self.contact_host
        return f"{host}:{self.contact_port}"
