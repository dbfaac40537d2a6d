"""A local stand-in for OpenAI's realtime calls (SIP): signed webhooks, call control, sideband.

It plays OpenAI's side of sip-and-outbound.md section 1 on loopback: it "rings" a service by
POSTing a ``realtime.call.incoming`` webhook signed as Standard Webhooks are (its own HMAC
code, so our verifier is checked against an independent signer), serves ``accept / reject /
refer / hangup`` under ``/v1/realtime/calls/{call_id}/…``, and serves the sideband at
``/v1/realtime?call_id=…``. The realtime session behind a call is any GA-protocol server
reached by URL (tests use the model server we ship); the stand-in owns what OpenAI owns on a
SIP call: the caller's audio leg, so it plays the model's audio itself (no audio deltas reach
the sideband) and reports ``output_audio_buffer.started/stopped/cleared`` and keypad digits.
"""

from service.peers.openai_calls.server import OpenAICallsStandIn, StandInCall
from service.peers.openai_calls.signing import sign_webhook

__all__ = ["OpenAICallsStandIn", "StandInCall", "sign_webhook"]
