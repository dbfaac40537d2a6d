"""TwiML we answer with, built by the twilio SDK (protocols.md A.1)."""

from __future__ import annotations

from twilio.twiml.voice_response import Connect, VoiceResponse

__all__ = ["busy_twiml", "reject_twiml", "stream_twiml"]

FALLBACK_APOLOGY = (
    "Sorry, our assistant is having trouble right now. Please call again in a few minutes."
)


def stream_twiml(
    stream_url: str, parameters: dict[str, str], *, fallback: str = FALLBACK_APOLOGY
) -> str:
    """``<Connect><Stream>`` carrying ``parameters``, then an apology for an abnormal end.

    A.1: Twilio runs the verbs after ``</Connect>`` only once our socket closes, so the apology
    is heard when the stream ends without the agent hanging up the call itself. Query strings
    are not allowed on the stream URL: data travels as ``<Parameter>``s (≤ 500 chars a pair).
    """
    response = VoiceResponse()
    connect = Connect()
    stream = connect.stream(url=stream_url)
    for name, value in parameters.items():
        stream.parameter(name=name, value=value)
    response.append(connect)
    response.say(fallback)
    response.hangup()
    return str(response)


def busy_twiml(message: str, *, redirect_number: str | None = None) -> str:
    """Decline politely, or hand the call to another number (used while draining)."""
    response = VoiceResponse()
    response.say(message)
    if redirect_number:
        response.dial(redirect_number)
    else:
        response.hangup()
    return str(response)


def reject_twiml(*, redirect_number: str | None = None) -> str:
    """A full process: ``<Reject reason="busy">`` (the caller hears a busy signal and the call
    is not billed as answered), or hand the call to an overflow number."""
    response = VoiceResponse()
    if redirect_number:
        response.dial(redirect_number)
    else:
        response.reject(reason="busy")
    return str(response)
