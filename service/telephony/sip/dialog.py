"""What the SIP endpoint returns (actions) and what it keeps per call (dialogs), RFC 3261.

Memory: a :class:`Dialog` is a few hundred bytes plus the INVITE and the last response.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from service.telephony.sip.message import SipMessage
from service.telephony.sip.sdp import MediaOffer

__all__ = [
    "T1",
    "T2",
    "Action",
    "Address",
    "CallAnswered",
    "CallConfirmed",
    "CallEnded",
    "CallOffered",
    "Dialog",
    "MediaChanged",
    "PendingRequest",
    "RequestAnswered",
    "TransferProgress",
    "Transmit",
]

T1 = 0.5  # §17.1.1.1 RTT estimate
T2 = 4.0
Address = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Transmit:
    data: bytes
    address: Address


@dataclass(frozen=True, slots=True)
class CallOffered:
    call_id: str
    from_user: str
    to_user: str
    offer: MediaOffer
    source: Address
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class CallConfirmed:
    call_id: str


@dataclass(frozen=True, slots=True)
class MediaChanged:
    """A re-INVITE moved the far end's media or put the call on (or off) hold."""

    call_id: str
    offer: MediaOffer


@dataclass(frozen=True, slots=True)
class CallEnded:
    call_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class RequestAnswered:
    """The final response to one of our in-dialog requests (0: it timed out, §17.1.2.2)."""

    call_id: str
    method: str
    status: int


@dataclass(frozen=True, slots=True)
class TransferProgress:
    """A NOTIFY of our REFER (RFC 3515 §2.4.5): the status line of the transferee's call."""

    call_id: str
    status: int


@dataclass(frozen=True, slots=True)
class CallAnswered:
    """Our outbound INVITE was answered (2xx, ACK sent): the far end's SDP answer."""

    call_id: str
    answer: MediaOffer


Action = (
    Transmit
    | CallAnswered
    | CallOffered
    | CallConfirmed
    | MediaChanged
    | CallEnded
    | RequestAnswered
    | TransferProgress
)


@dataclass(slots=True)
class PendingRequest:
    """One of our in-dialog requests (BYE) awaiting its response (§17.1.2 timers E and F)."""

    data: bytes
    branch: str
    method: str
    next_at: float
    interval: float
    give_up_at: float


@dataclass(slots=True)
class Dialog:
    call_id: str
    invite: SipMessage
    source: Address
    local_tag: str
    offer: MediaOffer
    # Inbound: offered → answered → confirmed → ended. Outbound: calling → confirmed → ended.
    state: str = "offered"
    last_response: bytes = b""
    answer_sdp: bytes = b""
    local_cseq: int = 0
    retransmit_at: float = 0.0
    retransmit_interval: float = T1
    give_up_at: float = 0.0
    forget_at: float = 0.0
    pending: PendingRequest | None = None
    routes: list[str] = field(default_factory=list)
    # Outbound calls (we sent the INVITE): the far end's To (with its tag) and Contact.
    outbound: bool = False
    remote_party: str = ""
    remote_target: str = ""
    auth_tries: int = 0
    credentials: tuple[str, str] | None = None
