"""Plausible token accounting for ``response.done.usage`` (B.4 ``usage`` fields).

Not billing-exact: OpenAI counts roughly 10 audio tokens per second of caller speech and
20 per second of model speech, and ~4 characters per text token. Cached tokens are a subset
of input tokens (B.4), here the older half of the context in 64-token blocks.
"""

from __future__ import annotations

import math
from typing import Any

from service.modelserver.conversation import Conversation

__all__ = ["AUDIO_MS_PER_OUTPUT_TOKEN", "context_tokens", "text_tokens", "usage"]

AUDIO_MS_PER_OUTPUT_TOKEN = 50  # ~20 audio tokens per second of model speech
AUDIO_MS_PER_INPUT_TOKEN = 100  # ~10 audio tokens per second of caller speech


def text_tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


def context_tokens(conversation: Conversation, instructions: str) -> tuple[int, int]:
    """(text, audio) tokens of a response's input: instructions plus every item."""
    text = text_tokens(instructions) + 50  # + the server's own framing
    audio = 0
    for item in conversation.items():
        text += 4 + text_tokens(str(item.data.get("content") or item.data.get("output", "")))
        per = AUDIO_MS_PER_OUTPUT_TOKEN if item.response_id else AUDIO_MS_PER_INPUT_TOKEN
        audio += item.audio_ms // per
    return text, audio


def usage(inputs: tuple[int, int], output_text: int, output_audio_ms: float) -> dict[str, Any]:
    """The ``usage`` object; ``inputs`` is :func:`context_tokens`' (text, audio)."""
    in_text, in_audio = inputs
    audio = math.ceil(output_audio_ms / AUDIO_MS_PER_OUTPUT_TOKEN)
    total_in = in_text + in_audio
    cached = (total_in // 2) // 64 * 64
    cached_text = min(cached, in_text)
    return {
        "total_tokens": total_in + audio + output_text,
        "input_tokens": total_in,
        "output_tokens": audio + output_text,
        "input_token_details": {
            "text_tokens": in_text,
            "audio_tokens": in_audio,
            "image_tokens": 0,
            "cached_tokens": cached,
            "cached_tokens_details": {
                "text_tokens": cached_text,
                "audio_tokens": cached - cached_text,
                "image_tokens": 0,
            },
        },
        "output_token_details": {"text_tokens": output_text, "audio_tokens": audio},
    }
