"""The local Realtime server's energy VAD and synthetic voice (sans-I/O, no sockets)."""

from __future__ import annotations

import numpy as np
import pytest

from service.audio.g711 import pcm16_to_ulaw, ulaw_to_pcm16
from service.audio.synthetic import SyntheticVoice, Voice
from service.audio.vad import (
    EnergyVad,
    VadParams,
    VoiceStarted,
    VoiceStopped,
    frame_dbfs,
    threshold_dbfs,
)


def tone(ms: int, rate: int, dbfs: float = -20.0, hz: float = 220.0) -> bytes:
    n = rate * ms // 1000
    amplitude = 32768 * 10 ** (dbfs / 20) * np.sqrt(2)
    samples = amplitude * np.sin(2 * np.pi * hz * np.arange(n) / rate)
    return samples.astype("<i2").tobytes()


def silence(ms: int, rate: int) -> bytes:
    return bytes(rate * ms // 1000 * 2)


def feed(vad: EnergyVad, pcm: bytes, chunk: int = 317) -> list[VoiceStarted | VoiceStopped]:
    """Odd-sized pieces: the VAD must carry partial frames across calls."""
    events: list[VoiceStarted | VoiceStopped] = []
    for i in range(0, len(pcm), chunk * 2):
        events += vad.process(pcm[i : i + chunk * 2])
    return events


def test_threshold_mapping_is_monotonic_and_centred() -> None:
    assert threshold_dbfs(0.5) == -40.0
    assert threshold_dbfs(0.0) < threshold_dbfs(0.5) < threshold_dbfs(1.0)
    assert threshold_dbfs(7.0) == threshold_dbfs(1.0)  # clamped


@pytest.mark.parametrize("rate", [8000, 24000])
def test_start_and_stop_times_follow_the_audio_clock(rate: int) -> None:
    vad = EnergyVad(rate)  # defaults: prefix 300 ms, silence 500 ms
    events = feed(vad, silence(1000, rate) + tone(800, rate) + silence(1000, rate))
    assert len(events) == 2
    started, stopped = events
    assert isinstance(started, VoiceStarted) and isinstance(stopped, VoiceStopped)
    assert started.audio_start_ms == 1000 - 300  # speech onset minus prefix padding
    assert started.detected_ms == 1060  # after min_speech_ms of voiced frames
    assert stopped.speech_end_ms == 1800
    assert stopped.audio_end_ms == 1800 + 500  # includes the silence duration (SDK docstring)


def test_prefix_padding_is_clamped_at_zero_and_start_offset_is_honoured() -> None:
    events = feed(EnergyVad(8000), tone(300, 8000) + silence(600, 8000))
    assert isinstance(events[0], VoiceStarted) and events[0].audio_start_ms == 0
    later = EnergyVad(8000, start_ms=5000.0)
    events = feed(later, silence(400, 8000) + tone(300, 8000) + silence(600, 8000))
    assert events[0].audio_start_ms == 5400 - 300


def test_short_pauses_do_not_end_the_turn_but_long_ones_do() -> None:
    rate = 8000
    params = VadParams(silence_duration_ms=500)
    audio = tone(400, rate) + silence(300, rate) + tone(400, rate) + silence(700, rate)
    events = feed(EnergyVad(rate, params), audio)
    assert [type(e) for e in events] == [VoiceStarted, VoiceStopped]
    shorter = feed(EnergyVad(rate, VadParams(silence_duration_ms=200)), audio)
    assert [type(e) for e in shorter] == [VoiceStarted, VoiceStopped] * 2


def test_threshold_decides_what_counts_as_speech() -> None:
    quiet = tone(600, 8000, dbfs=-45.0) + silence(600, 8000)
    assert feed(EnergyVad(8000, VadParams(threshold=0.5)), quiet) == []  # -45 < -40 dBFS
    assert len(feed(EnergyVad(8000, VadParams(threshold=0.2)), quiet)) == 2  # -45 > -52 dBFS


def test_blips_shorter_than_min_speech_are_ignored_and_reset_forgets_speech() -> None:
    vad = EnergyVad(8000)
    assert feed(vad, tone(40, 8000) + silence(500, 8000)) == []
    assert len(feed(vad, tone(200, 8000))) == 1 and vad.in_speech
    vad.reset()
    assert not vad.in_speech
    assert feed(vad, silence(1000, 8000)) == []  # no stop for a forgotten utterance


def test_line_noise_never_triggers() -> None:
    rng = np.random.default_rng(1)
    noise = (rng.standard_normal(8000 * 5) * 30).astype("<i2").tobytes()  # about -60 dBFS
    assert feed(EnergyVad(8000), noise) == []


# -- the synthetic voice ------------------------------------------------------------------


@pytest.mark.parametrize("rate", [8000, 24000])
def test_voice_length_is_exact_and_deterministic(rate: int) -> None:
    voice = SyntheticVoice(seed=3)
    assert isinstance(voice, Voice)
    first = b"".join(voice.synthesize("Hello there, how are you?", 1234, rate))
    assert len(first) == rate * 1234 // 1000 * 2
    assert first == b"".join(voice.synthesize("Hello there, how are you?", 1234, rate))
    assert first != b"".join(voice.synthesize("Something else entirely.", 1234, rate))


def test_voice_is_speech_like() -> None:
    """Voiced stretches with a pitch in the speech range, syllable-rate envelope, pauses."""
    rate = 8000
    pcm = np.frombuffer(b"".join(SyntheticVoice().synthesize("a b c", 3000, rate)), "<i2")
    frames = pcm.reshape(-1, rate // 50)  # 20 ms
    levels = np.array([frame_dbfs(f) for f in frames])
    voiced = levels > -30
    assert 0.5 < voiced.mean() < 0.95  # mostly talking, with gaps
    onsets = np.count_nonzero(voiced[1:] & ~voiced[:-1])
    assert 6 <= onsets <= 18  # roughly 3-5 syllables per second
    assert frame_dbfs(pcm) > -25  # loud enough, far above the VAD threshold
    spectrum = np.abs(np.fft.rfft(pcm.astype(float)))
    freqs = np.fft.rfftfreq(pcm.size, 1 / rate)
    low = (freqs > 60) & (freqs < 400)
    f0 = freqs[low][np.argmax(spectrum[low])]
    assert 100 <= f0 <= 400  # the strongest low peak: the fundamental or its 2nd harmonic
    assert np.abs(pcm).max() < 32767  # no clipping


def test_voice_survives_mulaw_and_is_one_utterance_for_the_vad() -> None:
    rate = 8000
    pcm = b"".join(SyntheticVoice().synthesize("Thanks for calling.", 2500, rate))
    decoded = ulaw_to_pcm16(pcm16_to_ulaw(pcm))
    events = feed(EnergyVad(rate), silence(500, rate) + decoded + silence(1000, rate))
    assert [type(e) for e in events] == [VoiceStarted, VoiceStopped]
    assert abs(events[0].audio_start_ms - 200) <= 40
    assert abs(events[1].speech_end_ms - 3000) <= 100
