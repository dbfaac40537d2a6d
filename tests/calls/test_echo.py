"""The echo gate against a simulated speakerphone: the agent's voice comes back at −15 dB
after 40–200 ms while the worker's own VAD listens (the Gemini path's barge-in ear)."""

from __future__ import annotations

import numpy as np
import pytest

from service.audio.g711 import pcm16_to_ulaw, ulaw_to_pcm16
from service.audio.synthetic import SyntheticVoice
from service.audio.vad import EnergyVad, VoiceStarted
from service.calls.echo import EchoGate

AGENT = SyntheticVoice(seed=3, level_dbfs=-16.0)
CALLER = SyntheticVoice(seed=11, level_dbfs=-16.0)
RATE = 8000
FRAME = 160  # 20 ms at 8 kHz


def speech(voice: SyntheticVoice, text: str, ms: int) -> np.ndarray:
    pcm = b"".join(voice.synthesize(text, ms, RATE))
    return np.frombuffer(pcm, dtype=np.int16).astype(np.float64)


def listen(
    *, delay_ms: int, echo_db: float = -15.0, interrupt_at_ms: int | None = None, gate: bool
) -> list[int]:
    """Play 4 s of agent speech; the caller's line carries its echo (and, from
    ``interrupt_at_ms``, the caller's own voice). Returns the ms at which the VAD heard speech."""
    agent = speech(AGENT, "your order shipped yesterday and will arrive on friday", 4000)
    line = np.zeros_like(agent)
    delay = delay_ms * RATE // 1000
    line[delay:] += agent[: len(agent) - delay] * 10 ** (echo_db / 20)
    if interrupt_at_ms is not None:
        start = interrupt_at_ms * RATE // 1000
        voice = speech(CALLER, "wait that is the wrong address", 4000 - interrupt_at_ms)
        line[start:] += voice[: len(line) - start]
    line_ulaw = pcm16_to_ulaw(np.clip(line, -32768, 32767).astype(np.int16).tobytes())
    echo_gate = EchoGate()
    # The agent's reply was sent ahead (faster than real time) and plays from t = 0.
    echo_gate.agent_audio(pcm16_to_ulaw(agent.astype(np.int16).tobytes()))
    vad = EnergyVad(RATE)
    heard: list[int] = []
    for index in range(0, len(line_ulaw) - FRAME + 1, FRAME):
        frame = line_ulaw[index : index + FRAME]
        now_ms = (index + FRAME) // 8  # this frame has arrived; as much agent audio played
        pcm = ulaw_to_pcm16(frame)
        if gate and echo_gate.is_echo(frame, now_ms):
            pcm = bytes(len(pcm))
        if any(isinstance(e, VoiceStarted) for e in vad.process(pcm)):
            heard.append(now_ms)
            vad.reset()
    return heard


@pytest.mark.parametrize("delay_ms", [40, 120, 200])
def test_echo_alone_is_no_barge_in(delay_ms: int) -> None:
    assert listen(delay_ms=delay_ms, gate=False), "without the gate the echo is heard as speech"
    assert listen(delay_ms=delay_ms, gate=True) == []


@pytest.mark.parametrize("delay_ms", [40, 120, 200])
def test_a_real_interruption_over_the_echo_is_heard_within_300_ms(delay_ms: int) -> None:
    heard = listen(delay_ms=delay_ms, interrupt_at_ms=1500, gate=True)
    assert heard and heard[0] >= 1500, heard
    assert heard[0] - 1500 <= 300, heard


def test_audio_discarded_by_a_clear_is_taken_back() -> None:
    gate = EchoGate()
    gate.agent_audio(b"\x80" * 160 * 10)  # 200 ms of loud μ-law
    gate.discard_unplayed(100)
    assert gate.sent_ms == 100
    # Nothing was played 40–200 ms before the 400 ms point of a 100 ms stream.
    assert gate.reference_db(400) == float("-inf")


async def wired_echo(*, delay_ms: int, gate: bool) -> int:
    """A whole wired call on the worker's own-VAD path: the caller's line returns what the
    carrier played, ``delay_ms`` late at −15 dB. Returns the barge-ins the worker made."""
    from service.modelserver.script import Script, Turn
    from service.realtime.config import SessionConfig, VadSettings
    from service.telephony.events import CallerAudio
    from tests.support.wired_call import WiredCall

    script = Script(greeting=Turn(text="Hello and welcome to the line", duration_ms=4000))
    # The server's VAD needs loud speech (−20 dBFS): the echo is for the worker's ear alone.
    config = SessionConfig(vad=VadSettings(threshold=1.0))
    call = WiredCall(script, config=config)
    call.model.detects_speech_during_playback = False  # the worker decides barge-in itself
    if not gate:
        call.worker.echo_gate.margin_db = 1000.0  # nothing is ever taken for echo
    async with call:
        await call.until(lambda: bool(call.model.received("response.done")))
        delay = delay_ms * 8
        for _ in range(100):  # 2 s of caller audio while the greeting plays
            end = len(call.carrier.heard) - delay
            played = bytes(call.carrier.heard[max(0, end - FRAME) : max(0, end)])
            pcm = np.frombuffer(ulaw_to_pcm16(played.rjust(FRAME, b"\xff")), dtype=np.int16)
            echo = (pcm.astype(np.float64) * 10 ** (-15 / 20)).astype(np.int16).tobytes()
            await call.worker.on_event(CallerAudio(pcm16_to_ulaw(echo)))
            await call.advance(0.02)
        return call.worker.barge_ins


@pytest.mark.parametrize("delay_ms", [40, 200])
async def test_the_worker_does_not_interrupt_itself_on_echo(delay_ms: int) -> None:
    assert await wired_echo(delay_ms=delay_ms, gate=False) >= 1
    assert await wired_echo(delay_ms=delay_ms, gate=True) == 0
