"""A local Gemini Live (BidiGenerateContent) peer on loopback, so tests and the demo run offline.

A second implementation of the public protocol (protocols.md D), not a mock of our client:
with ``google-genai`` installed every client message is validated against the SDK's Live
client types and every server message it sends against ``LiveServerMessage``.
"""

from service.peers.gemini_live.conformance import (
    ConformanceError,
    check_client_message,
    check_server_message,
    sdk_available,
)
from service.peers.gemini_live.script import GeminiScript, GeminiTurn, ToolCall
from service.peers.gemini_live.server import BIDI_PATH, LocalGeminiServer, main
from service.peers.gemini_live.session import CloseRequest, GeminiPeerSession
from service.peers.gemini_live.state import Conversation, HandleBook

__all__ = [
    "BIDI_PATH",
    "CloseRequest",
    "ConformanceError",
    "Conversation",
    "GeminiPeerSession",
    "GeminiScript",
    "GeminiTurn",
    "HandleBook",
    "LocalGeminiServer",
    "ToolCall",
    "check_client_message",
    "check_server_message",
    "main",
    "sdk_available",
]
