"""A local OpenAI Realtime (GA) server on loopback, so tests and the demo run offline.

It is a second implementation of the public protocol (protocols.md B), not a mock of our
client: every event it sends validates against the ``openai`` SDK's ``RealtimeServerEvent``
union, and client events are validated against ``RealtimeClientEvent`` as the real server does.

What it says comes from a :class:`Script` (scripted turns, synthetic audio) or, with the
``[local]`` extra, from the offline speech engine (:mod:`service.modelserver.engine`:
Silero VAD, Whisper STT, an LLM or built-in brain, Piper TTS), which the server is given
(``LocalRealtimeServer(script, engine=…)``).

Rules: the model server speaks only the wire; it may import ``service.audio``,
``service.peers.loopback`` and ``service.settings``, never the product (``agent``, ``calls``,
``telephony``, ``realtime``, ``store``). One job per module:

* ``server.py`` the asyncio front (thin); ``session.py`` the sans-I/O connection, composed
  of ``input_audio.py`` (clock, buffer, VAD turns, idle timeout), ``conversation.py`` (items
  and the client's item operations) and ``response.py`` (one streaming response), whose items
  are written by ``outputs.py`` and whose engine body is ``streaming.py``;
* ``protocol.py`` ids, errors, SDK validation; ``config.py`` session config and formats;
  ``usage.py`` token accounting; ``turns.py`` the request shapes the script and the engine
  share; ``script.py`` scripted behaviour; ``engine/`` the offline engine (never imports
  the session side).
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
