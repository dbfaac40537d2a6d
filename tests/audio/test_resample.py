"""StreamResampler and the μ-law transcoders: exact streaming, frame sizes, filter quality."""

from __future__ import annotations

import itertools

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.audio.g711 import pcm16_to_ulaw, ulaw_to_pcm16
from service.audio.resample import StreamResampler, _plan
from service.audio.transcode import PcmToUlaw, UlawToPcm

RATES = (8000, 16000, 24000)
PAIRS = [(a, b) for a in RATES for b in RATES if a != b]
ALL_PAIRS = [*PAIRS, *((r, r) for r in RATES)]

_F = npt.NDArray[np.float64]


def _pcm(x: npt.ArrayLike) -> bytes:
    return np.clip(np.rint(np.asarray(x, dtype=np.float64)), -32768, 32767).astype("<i2").tobytes()


def _samples(b: bytes) -> _F:
    return np.frombuffer(b, dtype="<i2").astype(np.float64)


def _tone(rate: int, freq: float, seconds: float, amp: float) -> _F:
    return amp * np.sin(2 * np.pi * freq * np.arange(int(rate * seconds)) / rate)


def _stream(r: StreamResampler, x: _F, frame_ms: int = 20) -> _F:
    pcm, step = _pcm(x), r.in_rate * frame_ms // 1000 * 2
    out = b"".join(r.process(pcm[i : i + step]) for i in range(0, len(pcm), step))
    return _samples(out + r.flush())


def _amplitude(y: _F, rate: int, freq: float) -> float:
    """Least-squares amplitude of ``freq`` in ``y`` (no leakage from partial cycles)."""
    w = 2 * np.pi * freq * np.arange(len(y)) / rate
    basis = np.stack([np.sin(w), np.cos(w)], axis=1)
    coef = np.linalg.lstsq(basis, y, rcond=None)[0]
    return float(np.hypot(*coef))


def _steady(y: _F, rate: int) -> _F:
    edge = rate // 20  # drop 50 ms at each end: filter start-up and flush tail
    return y[edge:-edge]


# --- construction, identity -------------------------------------------------------


@pytest.mark.parametrize(("a", "b"), [(44100, 8000), (8000, 48000), (0, 8000), (16000, 11025)])
def test_unsupported_rates_raise(a: int, b: int) -> None:
    with pytest.raises(ValueError, match="unsupported"):
        StreamResampler(a, b)


@pytest.mark.parametrize("rate", RATES)
def test_identity_passes_bytes_and_carries_odd_byte(rate: int) -> None:
    r = StreamResampler(rate, rate)
    assert r.delay_ms == 0.0
    assert r.process(b"\x01\x02\x03") == b"\x01\x02"
    assert r.process(b"") == b""
    assert r.process(b"\x04\x05") == b"\x03\x04"
    assert r.flush() == b""
    assert r.process(b"\x06\x07") == b"\x06\x07"  # the dangling 0x05 was dropped by flush


# --- exact streaming ----------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_any_chunking_matches_one_shot(data: st.DataObject) -> None:
    in_rate, out_rate = data.draw(st.sampled_from(ALL_PAIRS), label="pair")
    raw = data.draw(st.binary(max_size=4000), label="pcm")  # random bytes: full-scale noise
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=25), label="cuts"))
    whole = StreamResampler(in_rate, out_rate)
    expected = whole.process(raw) + whole.flush()
    chunked = StreamResampler(in_rate, out_rate)
    bounds = [0, *cuts, len(raw)]
    got = b"".join(chunked.process(raw[i:j]) for i, j in itertools.pairwise(bounds))
    assert got + chunked.flush() == expected


@settings(max_examples=60, deadline=None)
@given(
    pair=st.sampled_from(PAIRS),
    x=st.lists(st.integers(-32768, 32767), max_size=700),
)
def test_matches_direct_convolution(pair: tuple[int, int], x: list[int]) -> None:
    """The polyphase/blocked arithmetic equals zero-stuff → convolve → decimate, exactly."""
    in_rate, out_rate = pair
    p = _plan(in_rate, out_rate)
    r = StreamResampler(in_rate, out_rate)
    body = _samples(r.process(_pcm(x)))
    tail = _samples(r.flush())
    assert len(body) == (len(x) // p.down) * p.up
    if not x:
        assert len(tail) == 0
        return
    stuffed = np.zeros(len(x) * p.up)
    stuffed[:: p.up] = x
    ref = np.clip(np.rint(np.convolve(stuffed, p.h)[:: p.down]), -32768, 32767)
    full = np.concatenate([body, tail])
    # flush emits whole blocks, so it may end with at most up-1 zeros past the response
    assert len(ref) <= len(full) < len(ref) + p.up
    assert np.array_equal(full[: len(ref)], ref)
    assert not full[len(ref) :].any()


@pytest.mark.parametrize(("a", "b"), PAIRS)
def test_long_one_shot_matches_framed(a: int, b: int) -> None:
    """Long enough that one call splits its work into several matrix passes."""
    pcm = _pcm(np.random.default_rng(5).normal(0, 8000, a * 3))
    one = StreamResampler(a, b)
    framed = StreamResampler(a, b)
    step = a // 50 * 2
    got = b"".join(framed.process(pcm[i : i + step]) for i in range(0, len(pcm), step))
    assert got + framed.flush() == one.process(pcm) + one.flush()


@pytest.mark.parametrize(("a", "b"), PAIRS)
def test_flush_returns_to_initial_state(a: int, b: int) -> None:
    x = _pcm(_tone(a, 440, 0.1, 8000))
    r = StreamResampler(a, b)
    assert r.flush() == b""  # nothing fed: nothing held
    first = r.process(x) + r.flush()
    assert r.process(x) + r.flush() == first


# --- frame sizes ------------------------------------------------------------------


@pytest.mark.parametrize(("a", "b"), ALL_PAIRS)
@pytest.mark.parametrize("frame_ms", [20, 10])
def test_frame_in_gives_same_duration_out_every_frame(a: int, b: int, frame_ms: int) -> None:
    rng = np.random.default_rng(a + b + frame_ms)
    r = StreamResampler(a, b)
    n_in, n_out = a * frame_ms // 1000, b * frame_ms // 1000
    for _ in range(50):
        frame = _pcm(rng.normal(0, 6000, n_in))
        assert len(r.process(frame)) == 2 * n_out


def test_twenty_ms_examples_from_the_issue() -> None:
    down, up = StreamResampler(24000, 8000), StreamResampler(8000, 24000)
    for _ in range(5):
        assert len(down.process(bytes(960))) == 320  # 480 samples -> 160
        assert len(up.process(bytes(320))) == 960  # 160 samples -> 480


# --- filter quality -----------------------------------------------------------------


@pytest.mark.parametrize("in_rate", [24000, 16000])
def test_alias_rejection_6khz_to_8k(in_rate: int) -> None:
    def out_rms(freq: float) -> float:
        y = _stream(StreamResampler(in_rate, 8000), _tone(in_rate, freq, 0.5, 32767))
        return float(np.sqrt(np.mean(_steady(y, 8000) ** 2)))

    alias_db = 20 * np.log10(max(out_rms(6000), 1e-9) / out_rms(1000))
    assert alias_db <= -50, alias_db


@pytest.mark.parametrize("out_rate", [16000, 24000])
def test_image_rejection_8k_up(out_rate: int) -> None:
    y = _steady(_stream(StreamResampler(8000, out_rate), _tone(8000, 3000, 0.5, 20000)), out_rate)
    genuine = _amplitude(y, out_rate, 3000)
    image = _amplitude(y, out_rate, 8000 - 3000)  # first image of 3 kHz
    assert 20 * np.log10(image / genuine) <= -50


@pytest.mark.parametrize(("a", "b"), PAIRS)
def test_passband_is_flat(a: int, b: int) -> None:
    top = 3400 if min(a, b) == 8000 else 6800
    for freq in (300, 1000, 2000, 3000, top):
        y = _steady(_stream(StreamResampler(a, b), _tone(a, freq, 0.3, 10000)), b)
        gain_db = 20 * np.log10(_amplitude(y, b, freq) / 10000)
        assert abs(gain_db) <= 0.2, (freq, gain_db)


@pytest.mark.parametrize(("a", "b"), PAIRS)
def test_delay_is_small_and_matches_impulse_peak(a: int, b: int) -> None:
    r = StreamResampler(a, b)
    assert 0 < r.delay_ms <= 5
    x = np.zeros(a // 10)
    at = 3 * 8 * (a // 8000)  # 3 ms: an input sample that lands on the output grid
    x[at] = 20000
    y = _stream(r, x)
    measured_ms = 1000 * (int(np.argmax(y)) / b - at / a)
    assert abs(measured_ms - r.delay_ms) < 1000 / b / 2  # the same output sample


@pytest.mark.parametrize(("a", "b"), PAIRS)
def test_delay_by_cross_correlation_with_ideal_resampling(a: int, b: int) -> None:
    """Band-limited noise sampled at both rates is the ideal answer; find the lag."""
    rng = np.random.default_rng(7)
    period = 0.25
    bins = np.arange(int(3000 * period) + 1)
    spectrum = rng.normal(size=len(bins)) + 1j * rng.normal(size=len(bins))
    spectrum[bins < 100 * period] = 0
    spectrum *= 3000 / np.sqrt(2 * np.sum(np.abs(spectrum) ** 2))  # RMS 3000 at any rate

    def at_rate(rate: int) -> _F:
        n = int(rate * period)
        full = np.zeros(n // 2 + 1, dtype=complex)
        full[: len(bins)] = spectrum
        one = np.fft.irfft(full, n) * n
        return np.tile(one, 3)

    r = StreamResampler(a, b)
    y, ideal = _stream(r, at_rate(a)), at_rate(b)
    start, n = int(b * period), int(b * period)
    ref = ideal[start : start + n]
    lags = range(int(b * 0.010))
    scores = [float(np.dot(y[start + k : start + k + n], ref)) for k in lags]
    lag = int(np.argmax(scores))
    assert lag == round(r.delay_ms * b / 1000)
    residual = y[start + lag : start + lag + n] - ref
    assert np.sqrt(np.mean(residual**2)) / np.sqrt(np.mean(ref**2)) < 0.02


def test_overflow_clips_instead_of_wrapping() -> None:
    # A full-scale square wave overshoots (Gibbs) after low-pass filtering.
    x = np.tile(np.r_[np.full(40, 32767.0), np.full(40, -32768.0)], 10)
    y = _stream(StreamResampler(8000, 24000), x)
    assert y.max() == 32767 and y.min() == -32768
    plateau = y[330:410]  # 2nd positive half-cycle: 240..359 shifted by the 72-sample delay
    assert (plateau > 0).all()


# --- transcoders -----------------------------------------------------------------------


def test_ulaw_to_pcm_8k_is_plain_decode() -> None:
    ulaw = bytes(range(256))
    assert UlawToPcm(8000).convert(ulaw) == ulaw_to_pcm16(ulaw)


@pytest.mark.parametrize("rate", [16000, 24000])
def test_ulaw_to_pcm_frames(rate: int) -> None:
    conv = UlawToPcm(rate)
    assert conv.delay_ms == 3.0
    for _ in range(3):
        assert len(conv.convert(b"\xff" * 160)) == rate // 50 * 2
    assert conv.flush()  # the tail is silence-derived but still emitted


@pytest.mark.parametrize("rate", [8000, 16000, 24000])
def test_pcm_to_ulaw_frames_and_odd_carry(rate: int) -> None:
    pcm = _pcm(_tone(rate, 700, 0.1, 12000))
    whole = PcmToUlaw(rate)
    expected = whole.convert(pcm) + whole.flush()
    split = PcmToUlaw(rate)
    cut = rate // 50 * 2 + 1  # one 20 ms frame plus a stray byte
    first = split.convert(pcm[:cut])
    assert len(first) == 160
    assert first + split.convert(pcm[cut:]) + split.flush() == expected


def test_pcm_to_ulaw_matches_resample_then_encode() -> None:
    pcm = _pcm(_tone(24000, 440, 0.1, 12000))
    r = StreamResampler(24000, 8000)
    assert PcmToUlaw(24000).convert(pcm) == pcm16_to_ulaw(r.process(pcm))


def test_transcoders_reject_unsupported_rates() -> None:
    with pytest.raises(ValueError):
        UlawToPcm(44100)
    with pytest.raises(ValueError):
        PcmToUlaw(48000)
