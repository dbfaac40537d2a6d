"""Outbound calls: the INVITE client transaction and its dialog (RFC 3261 §13.2, §17.1.1).

Mixed into :class:`~service.telephony.sip.endpoint.SipEndpoint`, sans-I/O like it. The INVITE
is retransmitted from T1 doubling (timer A) until a provisional response, given up after 64·T1
without one (timer B) or after ``ring_timeout`` of ringing (then CANCEL, §9.1). A 401/407 is
answered once with digest credentials (RFC 8760: MD5 or SHA-256, as the challenge says). A 2xx
is ACKed (and re-ACKed when retransmitted, §13.2.2.4) and reported as :class:`CallAnswered`;
any other final response is ACKed and ends the call (``rejected_<status>``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from service.telephony.sip.dialog import (
    T1,
    T2,
    Action,
    Address,
    CallAnswered,
    CallEnded,
    Dialog,
    Transmit,
)
from service.telephony.sip.digest import answer_challenge
from service.telephony.sip.message import SipMessage, build_request, header_param, name_addr_uri
from service.telephony.sip.sdp import MediaOffer, SdpError, parse_offer

__all__ = ["OutboundCalls"]

RING_TIMEOUT_SECONDS = 60.0


class _Endpoint(Protocol):
    """What the outbound half uses of the endpoint it is mixed into."""

    calls: dict[str, Dialog]
    contact_host: str
    random_token: Callable[[], str]

    def _host_port(self) -> str: ...
    def _end(self, call: Dialog, now: float) -> None: ...
    def _bye(self, call: Dialog, now: float) -> list[Action]: ...
    def _send_invite(self, call: Dialog, now: float, auth: str = "") -> Transmit: ...
    def _cancel(self, call: Dialog) -> Transmit: ...
    def _ack(self, call: Dialog, response: SipMessage) -> Transmit: ...
    def _non_2xx_ack(self, call: Dialog, response: SipMessage) -> Transmit: ...
    def _bye_after_ack(self, call: Dialog, now: float) -> list[Action]: ...


class OutboundCalls:
    def dial(
        self: _Endpoint,
        *,
        request_uri: str,
        from_user: str,
        sdp: bytes,
        destination: Address,
        now: float,
        credentials: tuple[str, str] | None = None,
    ) -> tuple[str, list[Action]]:
        """Start an outbound call; returns its Call-ID and the INVITE to send."""
        call_id = f"{self.random_token()}{self.random_token()}@{self.contact_host}"
        local_tag = self.random_token()
        host = self._host_port()
        headers = [
            ("from", f"<sip:{from_user or 'voice-agent'}@{host}>;tag={local_tag}"),
            ("to", f"<{request_uri}>"),
            ("call-id", call_id),
            ("contact", f"<sip:{from_user or 'voice-agent'}@{host}>"),
            ("content-type", "application/sdp"),
        ]
        invite = build_request("INVITE", request_uri, headers, sdp)
        call = Dialog(call_id, invite, destination, local_tag, MediaOffer("", 0))
        call.state = "calling"
        call.outbound = True
        call.answer_sdp = sdp  # what a re-INVITE from the far end is answered with
        call.credentials = credentials
        self.calls[call_id] = call
        return call_id, [self._send_invite(call, now)]

    def _send_invite(self: _Endpoint, call: Dialog, now: float, auth: str = "") -> Transmit:
        call.local_cseq += 1
        branch = f"z9hG4bK{self.random_token()}"
        base = [(k, v) for k, v in call.invite.headers if k not in ("via", "cseq", "max-forwards")]
        base = [(k, v) for k, v in base if k not in ("authorization", "proxy-authorization")]
        headers = [
            ("via", f"SIP/2.0/UDP {self._host_port()};branch={branch};rport"),
            ("max-forwards", "70"),
            ("cseq", f"{call.local_cseq} INVITE"),
            *base,
        ]
        if auth:
            name, value = auth.split(":", 1)
            headers.append((name, value.strip()))
        call.invite = build_request("INVITE", call.invite.uri, headers, call.invite.body)
        call.retransmit_at = now + T1
        call.retransmit_interval = T1
        call.give_up_at = now + 64 * T1
        call.last_response = call.invite.to_bytes()  # while calling: what we retransmit
        return Transmit(call.last_response, call.source)

    def _poll_calling(self: _Endpoint, call: Dialog, now: float) -> list[Action]:
        if now >= call.give_up_at:
            ringing = call.retransmit_at == float("inf")
            self._end(call, now)
            actions: list[Action] = [CallEnded(call.call_id, "no_answer")]
            if ringing:
                actions.insert(0, self._cancel(call))
            return actions
        if now >= call.retransmit_at:
            call.retransmit_interval = min(call.retransmit_interval * 2, T2)
            call.retransmit_at = now + call.retransmit_interval
            return [Transmit(call.last_response, call.source)]
        return []

    def _cancel(self: _Endpoint, call: Dialog) -> Transmit:
        """§9.1: CANCEL copies the INVITE's Request-URI, Via (branch), From, To, Call-ID, CSeq."""
        invite = call.invite
        headers = [
            ("via", invite.get("via")),
            ("max-forwards", "70"),
            ("from", invite.get("from")),
            ("to", invite.get("to")),
            ("call-id", call.call_id),
            ("cseq", f"{invite.cseq[0]} CANCEL"),
        ]
        return Transmit(build_request("CANCEL", invite.uri, headers).to_bytes(), call.source)

    def _on_invite_response(
        self: _Endpoint, call: Dialog, response: SipMessage, now: float
    ) -> list[Action]:
        status = response.status
        if response.branch != call.invite.branch:
            if 200 <= status < 300 and call.state == "confirmed":
                return [self._ack(call, response)]  # a 2xx to an earlier (challenged) INVITE
            return []
        if status < 200:
            if call.state == "calling":
                call.retransmit_at = float("inf")  # timer A stops on a provisional (§17.1.1.2)
                call.give_up_at = now + RING_TIMEOUT_SECONDS
            return []
        if 200 <= status < 300:
            ack = self._ack(call, response)
            if call.state != "calling":
                return [ack]  # a retransmitted 2xx: our ACK was lost
            call.state = "confirmed"
            call.remote_party = response.get("to")
            call.remote_target = name_addr_uri(response.get("contact")) or call.invite.uri
            call.routes = list(reversed(response.get_all("record-route")))
            try:
                answer = parse_offer(response.body)
            except SdpError:
                self._end(call, now)
                return [ack, *self._bye_after_ack(call, now), CallEnded(call.call_id, "bad_sdp")]
            return [ack, CallAnswered(call.call_id, answer)]
        # A non-2xx final response: ACK it in the same transaction (§17.1.1.3).
        ack = self._non_2xx_ack(call, response)
        if call.state != "calling":
            return [ack]
        credentials = call.credentials
        if status in (401, 407) and credentials and call.auth_tries == 0:
            call.auth_tries += 1
            challenge = response.get("www-authenticate" if status == 401 else "proxy-authenticate")
            value = answer_challenge(
                challenge,
                username=credentials[0],
                password=credentials[1],
                method="INVITE",
                uri=call.invite.uri,
            )
            name = "authorization" if status == 401 else "proxy-authorization"
            return [ack, self._send_invite(call, now, f"{name}: {value}")]
        self._end(call, now)
        return [ack, CallEnded(call.call_id, f"rejected_{status}")]

    def _ack(self: _Endpoint, call: Dialog, response: SipMessage) -> Transmit:
        """§13.2.2.4: the ACK for a 2xx is its own transaction, sent to the remote target."""
        headers = [
            ("via", f"SIP/2.0/UDP {self._host_port()};branch=z9hG4bK{self.random_token()}"),
            ("max-forwards", "70"),
            ("from", call.invite.get("from")),
            ("to", response.get("to")),
            ("call-id", call.call_id),
            ("cseq", f"{response.cseq[0]} ACK"),
        ]
        headers += [("route", route) for route in reversed(response.get_all("record-route"))]
        target = name_addr_uri(response.get("contact")) or call.invite.uri
        return Transmit(build_request("ACK", target, headers).to_bytes(), call.source)

    def _non_2xx_ack(self: _Endpoint, call: Dialog, response: SipMessage) -> Transmit:
        headers = [
            ("via", call.invite.get("via")),
            ("max-forwards", "70"),
            ("from", call.invite.get("from")),
            ("to", response.get("to")),
            ("call-id", call.call_id),
            ("cseq", f"{response.cseq[0]} ACK"),
        ]
        return Transmit(build_request("ACK", call.invite.uri, headers).to_bytes(), call.source)

    def _bye_after_ack(self: _Endpoint, call: Dialog, now: float) -> list[Action]:
        call.state = "confirmed"
        return self._bye(call, now)

    def _outbound_parties(self: _Endpoint, call: Dialog) -> tuple[str, str, str]:
        """(From, To, Request-URI) of our in-dialog requests on an outbound call (§12.2.1.1)."""
        to = call.remote_party or call.invite.get("to")
        if not header_param(to, "tag"):
            to = call.invite.get("to")
        return call.invite.get("from"), to, call.remote_target or call.invite.uri
