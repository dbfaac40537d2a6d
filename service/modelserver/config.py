"""The effective session configuration: defaults, ``session.update`` merge rules (B.1), range
checks, and the audio formats the session speaks (B.1 table, F.1/F.2).

The session is kept as the plain GA JSON dict that ``session.created``/``session.updated``
carry, so what the client sees is exactly what the server uses; that one dict (instructions
and tools included) is the memory per connection; nothing here keeps state of its own.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Any

from service.audio.g711 import audioop, pcm16_to_ulaw, ulaw_to_pcm16
from service.modelserver.protocol import ProtocolError

__all__ = [
    "PCM_RATE",
    "AudioFormat",
    "audio_format",
    "check_ranges",
    "default_session",
    "merge_session",
    "turn_detection_defaults",
]

PCM_RATE = 24_000  # audio/pcm is 24 kHz only (B.1)
SESSION_TTL_S = 60 * 60  # GA sessions last 60 minutes (B.7)

# B.1 defaults: threshold 0.5, prefix 300 ms, silence 500 ms, create+interrupt true.
_SERVER_VAD = {
    "type": "server_vad",
    "threshold": 0.5,
    "prefix_padding_ms": 300,
    "silence_duration_ms": 500,
    "idle_timeout_ms": None,
    "create_response": True,
    "interrupt_response": True,
}
_SEMANTIC_VAD = {
    "type": "semantic_vad",
    "eagerness": "auto",
    "create_response": True,
    "interrupt_response": True,
}


def turn_detection_defaults(kind: str) -> dict[str, Any]:
    return dict(_SERVER_VAD if kind == "server_vad" else _SEMANTIC_VAD)


def default_session(session_id: str, model: str, voice: str = "marin") -> dict[str, Any]:
    """What ``session.created`` carries (B.4): the GA session object with server defaults."""
    pcm = {"type": "audio/pcm", "rate": PCM_RATE}
    return {
        "type": "realtime",
        "object": "realtime.session",
        "id": session_id,
        "model": model,
        "output_modalities": ["audio"],
        "instructions": "",
        "tools": [],
        "tool_choice": "auto",
        "max_output_tokens": "inf",
        "tracing": None,
        "truncation": "auto",
        "prompt": None,
        "expires_at": int(time.time()) + SESSION_TTL_S,
        "include": None,
        "audio": {
            "input": {
                "format": dict(pcm),
                "transcription": None,
                "noise_reduction": None,
                "turn_detection": turn_detection_defaults("server_vad"),
            },
            "output": {"format": dict(pcm), "voice": voice, "speed": 1.0},
        },
    }


def _normalize_format(fmt: dict[str, Any], param: str) -> dict[str, Any]:
    kind = fmt.get("type")
    if kind is None:
        raise ProtocolError(
            f"Missing required parameter: '{param}.type'.",
            code="missing_required_parameter",
            param=f"{param}.type",
        )
    return {"type": kind, "rate": PCM_RATE} if kind == "audio/pcm" else {"type": kind}


def merge_session(current: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Apply an already-validated ``session.update.session`` (B.1 update semantics).

    Only present fields change; ``null`` clears objects such as ``turn_detection``; ``""``
    and ``[]`` clear strings and arrays. ``turn_detection`` and ``noise_reduction`` merge into
    the current object (omitted sub-fields are kept), unless ``turn_detection.type`` changes,
    in which case the new type's defaults are the base. ``type``/``model`` are connect-time
    facts and are not changed (B.1: "don't try to change it mid-session").
    """
    merged = copy.deepcopy(current)
    for key, value in update.items():
        if key in ("type", "model", "audio"):
            continue
        merged[key] = copy.deepcopy(value)
    audio = update.get("audio") or {}
    for direction in ("input", "output"):
        changes = audio.get(direction) or {}
        target = merged["audio"][direction]
        for key, value in changes.items():
            param = f"session.audio.{direction}.{key}"
            if key == "format":
                target[key] = _normalize_format(value, param)
            elif key == "turn_detection" and value is not None:
                old = target.get(key)
                base = old if old and old["type"] == value["type"] else None
                target[key] = {**(base or turn_detection_defaults(value["type"])), **value}
            elif key == "noise_reduction" and value is not None:
                target[key] = {**(target.get(key) or {}), **value}
            else:
                target[key] = copy.deepcopy(value)
    return merged


def _bound(value: float | None, param: str, low: float, high: float, integer: bool) -> None:
    if value is None:
        return
    kind = "integer" if integer else "decimal"
    if value < low:
        raise ProtocolError(
            f"Invalid '{param}': {kind} below minimum value. Expected a value >= {low:g}, "
            f"but got {value:g} instead.",
            code=f"{kind}_below_min_value",
            param=param,
        )
    if value > high:
        raise ProtocolError(
            f"Invalid '{param}': {kind} above maximum value. Expected a value <= {high:g}, "
            f"but got {value:g} instead.",
            code=f"{kind}_above_max_value",
            param=param,
        )


def check_update(current: dict[str, Any], update: dict[str, Any], voice_locked: bool) -> None:
    """What a ``session.update`` may not change (B.1): the session type, and the voice once
    assistant audio exists (``voice_locked``); then the ranges (:func:`check_ranges`)."""
    if update["type"] != "realtime":
        raise ProtocolError(
            f"Invalid value: '{update['type']}'. This is a realtime session; "
            "its type cannot change.",
            code="invalid_value",
            param="session.type",
        )
    check_ranges(update)
    voice = ((update.get("audio") or {}).get("output") or {}).get("voice")
    if voice_locked and voice is not None and voice != current["audio"]["output"]["voice"]:
        raise ProtocolError(
            "Cannot update a conversation's voice if assistant audio is present.",
            code="cannot_update_voice",
            param="session.audio.output.voice",
        )


def check_ranges(update: dict[str, Any], prefix: str = "session") -> None:
    """The numeric ranges and combinations documented in B.1 (SDK docstrings)."""
    modalities = update.get("output_modalities")
    if modalities is not None and len(set(modalities)) != 1:
        raise ProtocolError(
            f"Invalid '{prefix}.output_modalities': supported combinations are ['text'] and "
            f"['audio'].",
            code="invalid_value",
            param=f"{prefix}.output_modalities",
        )
    tokens = update.get("max_output_tokens")
    if isinstance(tokens, int):
        _bound(tokens, f"{prefix}.max_output_tokens", 1, 4096, True)
    audio = update.get("audio") or {}
    td = (audio.get("input") or {}).get("turn_detection") or {}
    base = f"{prefix}.audio.input.turn_detection"
    _bound(td.get("threshold"), f"{base}.threshold", 0.0, 1.0, False)
    for field in ("prefix_padding_ms", "silence_duration_ms", "idle_timeout_ms"):
        _bound(td.get(field), f"{base}.{field}", 0, float("inf"), True)
    output = audio.get("output") or {}
    _bound(output.get("speed"), f"{prefix}.audio.output.speed", 0.25, 1.5, False)


@dataclass(frozen=True)
class AudioFormat:
    """One of the three GA audio formats (B.1): PCM16 LE mono 24 kHz, G.711 μ-law or A-law 8 kHz."""

    type: str
    rate: int

    @property
    def bytes_per_sample(self) -> int:
        return 2 if self.type == "audio/pcm" else 1

    def to_pcm16(self, data: bytes) -> bytes:
        """Wire bytes → PCM16 LE at :attr:`rate` (F.2)."""
        if self.type == "audio/pcmu":
            return ulaw_to_pcm16(data)
        if self.type == "audio/pcma":
            return audioop.alaw2lin(data, 2)
        return data

    def from_pcm16(self, pcm: bytes) -> bytes:
        """PCM16 LE at :attr:`rate` → wire bytes."""
        if self.type == "audio/pcmu":
            return pcm16_to_ulaw(pcm)
        if self.type == "audio/pcma":
            return audioop.lin2alaw(pcm, 2)
        return pcm


def audio_format(fmt: dict[str, Any]) -> AudioFormat:
    kind = fmt["type"]
    return AudioFormat(kind, PCM_RATE if kind == "audio/pcm" else 8_000)
