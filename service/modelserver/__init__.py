"""A local OpenAI Realtime (GA) server on loopback, so tests and the demo run offline.

It is a second implementation of the public protocol (protocols.md B), not a mock of our
client: every event it sends validates against the ``openai`` SDK's ``RealtimeServerEvent``
union, and client events are validated against ``RealtimeClientEvent`` as the real server does.

What it says comes from a :class:`Script` (scripted turns, synthetic audio) or, with the
``[local]`` extra, from the offline speech engine (:mod:`service.modelserver.engine`:
Silero VAD, Whisper STT, an LLM or built-in brain, Piper TTS).
"""

from service.audio.synthetic import SyntheticVoice, Voice
from service.modelserver.script import ErrorSpec, FunctionCall, ResponseRequest, Script, Turn
from service.modelserver.server import LocalRealtimeServer, main
from service.modelserver.session import CloseRequest, RealtimeSession

__all__ = [
    "CloseRequest",
    "ErrorSpec",
    "FunctionCall",
    "LocalRealtimeServer",
    "RealtimeSession",
    "ResponseRequest",
    "Script",
    "SyntheticVoice",
    "Turn",
    "Voice",
    "main",
]
