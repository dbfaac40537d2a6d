"""Property-based fuzzing of the Gemini Live protocol core (issue 11, item 1).

Any JSON value in any field the core reads: no exception escapes, and a value of the wrong
type is counted (a ``ModelError("malformed_message")`` and ``malformed_messages``).
"""

from __future__ import annotations

import base64
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from service.realtime.config import SessionConfig
from service.realtime.events import ModelError, ModelEvent
from service.realtime.gemini.protocol import MALFORMED, GeminiLiveProtocol
from tests.realtime.openai.test_protocol_fuzz import FUZZ, FUZZ_LIGHT
from tests.support.fuzzing import get, json_values, mutations, put, wrong_type

AUDIO = base64.b64encode(b"\x00\x01" * 8).decode()

# One well-formed message of every kind the core reads, with every field it reads (``args``
# is passed on whole, so its contents are not fields of ours).
TEMPLATES: list[dict[str, Any]] = [
    {"setupComplete": {"sessionId": "s1"}},
    {
        "serverContent": {
            "inputTranscription": {"text": "where is my order", "finished": True},
            "modelTurn": {
                "parts": [{"inlineData": {"mimeType": "audio/pcm;rate=24000", "data": AUDIO}}]
            },
            "outputTranscription": {"text": "It ships today"},
            "interrupted": True,
            "turnComplete": True,
        }
    },
    {"toolCall": {"functionCalls": [{"id": "c1", "name": "lookup", "args": {}}]}},
    {"toolCallCancellation": {"ids": ["c1", "c2"]}},
    {"goAway": {"timeLeft": "10s"}},
    {"sessionResumptionUpdate": {"newHandle": "h1", "resumable": True}},
]


def ready_protocol() -> GeminiLiveProtocol:
    protocol = GeminiLiveProtocol(SessionConfig(), model="m")
    protocol.receive(orjson.dumps({"setupComplete": {}}))
    return protocol


def receive(protocol: GeminiLiveProtocol, message: Any) -> list[ModelEvent]:
    events = protocol.receive(orjson.dumps(message))
    assert all(isinstance(event, ModelEvent) for event in events)
    return events


def test_every_template_is_well_formed() -> None:
    protocol = ready_protocol()
    for template in TEMPLATES:
        receive(protocol, template)
    assert protocol.malformed_messages == 0


@FUZZ
@given(mutations(TEMPLATES))
def test_any_value_in_any_field_is_handled_and_a_wrong_type_is_counted(
    mutation: tuple[dict[str, Any], tuple, Any],
) -> None:
    template, path, value = mutation
    protocol = ready_protocol()
    events = receive(protocol, put(template, path, value))
    if wrong_type(get(template, path), value):
        assert any(isinstance(e, ModelError) and e.code == MALFORMED for e in events)
        assert protocol.malformed_messages == 1


@FUZZ_LIGHT
@given(
    st.lists(st.sampled_from(TEMPLATES), max_size=4),
    st.dictionaries(st.text(max_size=12), json_values, max_size=4),
)
def test_arbitrary_messages_in_any_order_never_raise(sequence: list[dict], extra: dict) -> None:
    protocol = ready_protocol()
    for message in [*sequence, extra, {**extra, **(sequence[0] if sequence else {})}]:
        receive(protocol, message)
    protocol.connection_lost()


@FUZZ_LIGHT
@given(json_values | st.binary(max_size=64).map(lambda b: b.decode("latin-1")))
def test_any_frame_is_handled_and_a_non_object_is_counted(value: Any) -> None:
    protocol = ready_protocol()
    frame = value if isinstance(value, str) else orjson.dumps(value)
    events = protocol.receive(frame)
    if not isinstance(value, dict):
        assert [type(e) for e in events] == [ModelError] and protocol.malformed_messages == 1
