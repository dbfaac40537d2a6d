"""REGISTER as a client (RFC 3261 §10.2), sans-I/O: keeps one binding of our Contact at a
registrar so a trunk that only sends calls to registered users can reach us.

The REGISTER is retransmitted from T1 doubling to T2 until a response (§17.1.2.2, up to
64·T1); a 401/407 is answered once with digest; a 2xx is refreshed at 80 % of the expiry the
registrar granted; a failure is retried after ``RETRY_SECONDS``. Memory: one request.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from service.telephony.sip.dialog import T1, T2, Address, Transmit
from service.telephony.sip.digest import answer_challenge
from service.telephony.sip.message import SipMessage, build_request, header_param

__all__ = ["Registration", "RegistrationState"]

EXPIRES_SECONDS = 300
RETRY_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class RegistrationState:
    """What the registrar said: ``status`` 200 and ``expires`` > 0 means registered."""

    status: int
    expires: int = 0


class Registration:
    def __init__(
        self,
        *,
        registrar: Address,
        domain: str,
        user: str,
        contact: str,
        credentials: tuple[str, str] | None,
        expires: int = EXPIRES_SECONDS,
    ) -> None:
        self.registrar = registrar
        self.domain = domain
        self.user = user
        self.contact = contact
        self.credentials = credentials
        self.expires = expires
        self.call_id = f"{os.urandom(8).hex()}@{domain}"
        self.tag = os.urandom(4).hex()
        self.cseq = 0
        self.branch = ""
        self._data = b""
        self._next_send = 0.0  # when to (re)send: a retransmission or a refresh
        self._interval = T1
        self._give_up_at = 0.0
        self._waiting = False
        self._challenged = False
        self.state: RegistrationState | None = None

    def start(self, now: float) -> list[Transmit]:
        return [self._send(now)]

    @property
    def next_deadline(self) -> float:
        return self._next_send

    def poll(self, now: float) -> tuple[list[Transmit], RegistrationState | None]:
        if now < self._next_send:
            return [], None
        if self._waiting and now >= self._give_up_at:
            self._waiting = False
            self._next_send = now + RETRY_SECONDS
            self.state = RegistrationState(0)
            return [], self.state
        if self._waiting:
            self._interval = min(self._interval * 2, T2)
            self._next_send = now + self._interval
            return [Transmit(self._data, self.registrar)], None
        self._challenged = False
        return [self._send(now)], None

    def on_response(
        self, response: SipMessage, now: float
    ) -> tuple[list[Transmit], RegistrationState | None]:
        if not self._waiting or response.branch != self.branch or response.status < 200:
            return [], None
        self._waiting = False
        status = response.status
        if status in (401, 407) and self.credentials and not self._challenged:
            self._challenged = True
            header = "www-authenticate" if status == 401 else "proxy-authenticate"
            value = answer_challenge(
                response.get(header),
                username=self.credentials[0],
                password=self.credentials[1],
                method="REGISTER",
                uri=f"sip:{self.domain}",
            )
            name = "authorization" if status == 401 else "proxy-authorization"
            return [self._send(now, (name, value))], None
        if 200 <= status < 300:
            granted = self._granted(response)
            self._next_send = now + max(granted * 0.8, 1.0)
            self.state = RegistrationState(status, granted)
        else:
            self._next_send = now + RETRY_SECONDS
            self.state = RegistrationState(status)
        return [], self.state

    def _granted(self, response: SipMessage) -> int:
        """§10.2.4: the expiry on our Contact, else the Expires header, else what we asked."""
        for contact in response.get_all("contact"):
            expires = header_param(contact, "expires")
            if expires.isdigit():
                return int(expires)
        header = response.get("expires")
        return int(header) if header.isdigit() else self.expires

    def _send(self, now: float, auth: tuple[str, str] | None = None) -> Transmit:
        self.cseq += 1
        self.branch = f"z9hG4bK{os.urandom(6).hex()}"
        aor = f"<sip:{self.user}@{self.domain}>"
        headers = [
            ("via", f"SIP/2.0/UDP {self.contact};branch={self.branch};rport"),
            ("max-forwards", "70"),
            ("from", f"{aor};tag={self.tag}"),
            ("to", aor),
            ("call-id", self.call_id),
            ("cseq", f"{self.cseq} REGISTER"),
            ("contact", f"<sip:{self.user}@{self.contact}>"),
            ("expires", str(self.expires)),
        ]
        if auth is not None:
            headers.append(auth)
        self._data = build_request("REGISTER", f"sip:{self.domain}", headers).to_bytes()
        self._waiting = True
        self._interval = T1
        self._next_send = now + T1
        self._give_up_at = now + 64 * T1
        return Transmit(self._data, self.registrar)
