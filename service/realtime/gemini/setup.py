"""Building the Gemini Live ``setup`` message from our neutral ``SessionConfig`` (protocols.md D.2).

Pure functions: voice names, OpenAI-style tool dicts → ``functionDeclarations``, VAD settings →
``realtimeInputConfig``. Kept apart from the wire protocol (gemini.py) because these are
translation tables, not conversation state.
"""

from __future__ import annotations

from typing import Any

from service.realtime.config import SessionConfig, VadSettings

__all__ = [
    "DEFAULT_GEMINI_VOICE",
    "GEMINI_VOICES",
    "build_setup",
    "function_declaration",
    "gemini_schema",
    "gemini_voice",
    "model_path",
    "realtime_input_config",
]

# D.2: the half-cascade voices; native-audio models accept these and more. A name given
# explicitly through GEMINI_VOICE is passed through unchecked (the server knows the list).
GEMINI_VOICES = ("Puck", "Charon", "Kore", "Fenrir", "Aoede", "Leda", "Orus", "Zephyr")
DEFAULT_GEMINI_VOICE = "Kore"
# Profiles name OpenAI voices (default "marin"); pick a Gemini voice of a similar register so a
# profile written for OpenAI still sounds roughly as intended. Unknown names get the default.
_FROM_OPENAI = {
    "marin": "Kore",
    "shimmer": "Aoede",
    "coral": "Leda",
    "sage": "Zephyr",
    "alloy": "Kore",
    "cedar": "Charon",
    "echo": "Puck",
    "ash": "Fenrir",
    "ballad": "Orus",
    "verse": "Puck",
}

# JSON-schema keywords the Gemini ``Schema`` (an OpenAPI 3.0 subset) has under the same name.
_SAME_KEYS = (
    "description",
    "format",
    "pattern",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
)


def model_path(model: str) -> str:
    """D.2: ``setup.model`` is ``models/{model}``."""
    return model if model.startswith("models/") else f"models/{model}"


def gemini_voice(requested: str, fallback: str | None = None) -> str:
    """A Gemini prebuilt voice for the profile's ``voice`` (case-insensitive match of D.2's list,
    else the OpenAI→Gemini table, else ``fallback`` or ``DEFAULT_GEMINI_VOICE``)."""
    for name in GEMINI_VOICES:
        if name.lower() == requested.strip().lower():
            return name
    if fallback:
        return fallback
    return _FROM_OPENAI.get(requested.strip().lower(), DEFAULT_GEMINI_VOICE)


def gemini_schema(node: Any) -> dict[str, Any]:
    """A JSON schema (pydantic's, as our tool registry emits it) as a Gemini ``Schema``.

    D.2 example: types are the upper-case enum names (``OBJECT``, ``STRING``); proto-JSON
    parsing of enums is exact, so ``"object"`` would be refused. ``Optional[X]`` (a type list
    or ``anyOf`` with ``null``) becomes ``nullable``. Dropped on purpose: ``title`` (noise),
    ``additionalProperties`` and ``default`` (not reliably accepted by the Live API; the tool
    registry validates arguments itself with ``extra="forbid"``).
    """
    if not isinstance(node, dict):
        return {}
    out: dict[str, Any] = {}
    kind = node.get("type")
    options = node.get("anyOf")
    if isinstance(kind, list):
        if "null" in kind:
            out["nullable"] = True
        rest = [k for k in kind if k != "null"]
        kind = rest[0] if len(rest) == 1 else None
    elif kind is None and isinstance(options, list):
        real = [o for o in options if not (isinstance(o, dict) and o.get("type") == "null")]
        if len(real) < len(options):
            out["nullable"] = True
        if len(real) == 1:
            merged = {**real[0], **{k: v for k, v in node.items() if k != "anyOf"}}
            return {**gemini_schema(merged), **out}
        out["anyOf"] = [gemini_schema(o) for o in real]
    if isinstance(kind, str):
        out["type"] = kind.upper()
    for key in _SAME_KEYS:
        if key in node:
            out[key] = node[key]
    if "const" in node and isinstance(node["const"], str):
        out["enum"] = [node["const"]]
    elif isinstance(node.get("enum"), list) and all(isinstance(v, str) for v in node["enum"]):
        out["enum"] = list(node["enum"])  # Schema.enum is a list of strings
    if isinstance(node.get("properties"), dict):
        out["properties"] = {k: gemini_schema(v) for k, v in node["properties"].items()}
    if isinstance(node.get("required"), list):
        out["required"] = list(node["required"])
    if "items" in node:
        out["items"] = gemini_schema(node["items"])
    return out


def function_declaration(tool: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI-style ``{type, name, description, parameters}`` tool as a D.2 declaration."""
    declaration: dict[str, Any] = {"name": tool["name"]}
    if tool.get("description"):
        declaration["description"] = tool["description"]
    parameters = tool.get("parameters")
    # A function without arguments has no ``parameters`` at all (an empty OBJECT with no
    # properties is refused by some Gemini schema validators).
    if isinstance(parameters, dict) and parameters.get("properties"):
        declaration["parameters"] = gemini_schema(parameters)
    return declaration


def realtime_input_config(vad: VadSettings) -> dict[str, Any]:
    """D.2 ``realtimeInputConfig``: server VAD on, barge-in on.

    OpenAI's ``threshold`` (higher = needs louder speech) maps to the start sensitivity: above
    the 0.5 default it is LOW (noisy phone lines), otherwise HIGH (Gemini's default). A patient
    ``silence_duration_ms`` (≥ 800) also makes the end sensitivity LOW. ``idle_timeout_ms`` has
    no Gemini counterpart and is not sent.
    """
    start = "START_SENSITIVITY_LOW" if vad.threshold > 0.5 else "START_SENSITIVITY_HIGH"
    end = "END_SENSITIVITY_LOW" if vad.silence_duration_ms >= 800 else "END_SENSITIVITY_HIGH"
    return {
        "automaticActivityDetection": {
            "disabled": False,
            "startOfSpeechSensitivity": start,
            "endOfSpeechSensitivity": end,
            "prefixPaddingMs": vad.prefix_padding_ms,
            "silenceDurationMs": vad.silence_duration_ms,
        },
        # D.2: the default, stated so a server default change cannot turn barge-in off.
        "activityHandling": "START_OF_ACTIVITY_INTERRUPTS",
    }


def build_setup(
    config: SessionConfig, *, model: str, voice: str, handle: str | None = None
) -> dict[str, Any]:
    """The whole D.2 ``setup`` message (the first and only setup of a connection)."""
    setup: dict[str, Any] = {
        "model": model_path(model),
        "generationConfig": {
            # D.2: exactly one modality; AUDIO for a phone call.
            "responseModalities": ["AUDIO"],
            "speechConfig": {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": voice}}},
        },
        "systemInstruction": {"parts": [{"text": config.instructions}]},
        "realtimeInputConfig": realtime_input_config(config.vad),
        "inputAudioTranscription": {},
        "outputAudioTranscription": {},
        # D.2: ``{}`` asks for resumption handles; a handle resumes that session (D.5).
        "sessionResumption": {"handle": handle} if handle else {},
        # D.5: compression lifts the 15 min audio-session limit; defaults for both sizes.
        "contextWindowCompression": {"slidingWindow": {}},
    }
    if config.tools:
        setup["tools"] = [
            {"functionDeclarations": [function_declaration(tool) for tool in config.tools]}
        ]
    return {"setup": setup}
