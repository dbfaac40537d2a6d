"""Bench: which streaming resampler meets aliasing, delay and smoothness at once?

Run: ``.venv/bin/python bench/resampler.py`` (a few seconds).

How to read the table (one row per candidate, all fed 20 ms frames as a call would):

* ``alias dB``   level of the 2 kHz alias of a full-scale 6 kHz tone at 24k→8k, relative
  to a genuine full-scale 1 kHz tone.  Needs ≤ -50.
* ``delay ms``   24k→8k / 8k→24k.  How late audio comes out: the lag of the output
  stream against ideal band-limited resampling (cross-correlation, sub-sample) plus the
  most audio the candidate ever held back between frames (a player must buffer that
  much to play without gaps).  Needs ≤ 5.
* ``burst ms``   largest / smallest output of a single 20 ms frame, over both directions.
  Smooth means exactly 20 / 20.
* ``µs 24→8`` / ``µs 8→24``  median of 5 runs of 2000 frames, bytes in → bytes out.
  The machine is shared and noisy: compare ratios within one run, not across runs.

The verdict line names the candidates that meet all three requirements.
"""

from __future__ import annotations

import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt
import soxr

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from service.audio.resample import StreamResampler

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

_F = npt.NDArray[np.float64]
FRAME_MS = 20
FRAMES_TIMED = 2000
REPEATS = 5


class Stream(Protocol):
    def feed(self, pcm: bytes) -> bytes: ...
    def end(self) -> bytes: ...


class Ratecv:
    def __init__(self, a: int, b: int) -> None:
        self.a, self.b, self.state = a, b, None

    def feed(self, pcm: bytes) -> bytes:
        out, self.state = audioop.ratecv(pcm, 2, 1, self.a, self.b, self.state)
        return out

    def end(self) -> bytes:
        return b""


class Soxr:
    def __init__(self, a: int, b: int, quality: str) -> None:
        self.rs = soxr.ResampleStream(a, b, 1, dtype="int16", quality=quality)

    def feed(self, pcm: bytes) -> bytes:
        return self.rs.resample_chunk(np.frombuffer(pcm, dtype="<i2")).tobytes()

    def end(self) -> bytes:
        return self.rs.resample_chunk(np.zeros(0, dtype=np.int16), last=True).tobytes()


class Fir:
    def __init__(self, a: int, b: int) -> None:
        self.r = StreamResampler(a, b)

    def feed(self, pcm: bytes) -> bytes:
        return self.r.process(pcm)

    def end(self) -> bytes:
        return self.r.flush()


def _soxr(q: str) -> Callable[[int, int], Stream]:
    return lambda a, b: Soxr(a, b, q)


CANDIDATES: dict[str, Callable[[int, int], Stream]] = {
    "audioop.ratecv": Ratecv,
    **{f"soxr {q}": _soxr(q) for q in ("QQ", "LQ", "MQ", "HQ", "VHQ")},
    "polyphase FIR": Fir,
}


def _pcm(x: _F) -> bytes:
    return np.clip(np.rint(x), -32768, 32767).astype("<i2").tobytes()


def _frames(pcm: bytes, rate: int) -> list[bytes]:
    step = rate * FRAME_MS // 1000 * 2
    return [pcm[i : i + step] for i in range(0, len(pcm), step)]


def _run(make: Callable[[int, int], Stream], a: int, b: int, x: _F) -> tuple[_F, list[int]]:
    """Stream ``x`` in 20 ms frames; return all output and the sample count of each frame."""
    s = make(a, b)
    outs = [s.feed(f) for f in _frames(_pcm(x), a)]
    y = np.frombuffer(b"".join(outs) + s.end(), dtype="<i2").astype(np.float64)
    return y, [len(o) // 2 for o in outs]


def alias_db(make: Callable[[int, int], Stream]) -> float:
    def rms(freq: float) -> float:
        t = np.arange(24000) / 24000
        y, _ = _run(make, 24000, 8000, 32767 * np.sin(2 * np.pi * freq * t))
        return float(np.sqrt(np.mean(y[800:-800] ** 2)))

    return 20 * np.log10(max(rms(6000), 1e-3) / rms(1000))


def _bandlimited(rate: int, seconds: float, seed: int = 3) -> _F:
    """Noise with content 100–3000 Hz, identical as a function of time at any rate."""
    rng = np.random.default_rng(seed)
    k = np.arange(int(3000 * seconds) + 1)
    spec = (rng.normal(size=len(k)) + 1j * rng.normal(size=len(k))) * (k >= 100 * seconds)
    spec *= 3000 / np.sqrt(2 * np.sum(np.abs(spec) ** 2))
    n = int(rate * seconds)
    full = np.zeros(n // 2 + 1, dtype=complex)
    full[: len(k)] = spec
    return np.fft.irfft(full, n) * n


def delay_ms(make: Callable[[int, int], Stream], a: int, b: int) -> tuple[float, list[int]]:
    seconds = 1.0
    y, sizes = _run(make, a, b, np.tile(_bandlimited(a, seconds), 2))
    ideal = np.tile(_bandlimited(b, seconds), 2)
    # Lag of the output against the ideal signal, on the steady second period.
    n = int(b * seconds)
    seg = y[n : 2 * n]
    if len(seg) < n:
        seg = np.pad(seg, (0, n - len(seg)))
    corr = np.fft.irfft(np.fft.rfft(seg) * np.conj(np.fft.rfft(ideal[n : 2 * n])), n)
    i = int(np.argmax(corr))
    before, peak, after = corr[i - 1], corr[i], corr[(i + 1) % n]
    frac = 0.5 * (before - after) / (before - 2 * peak + after)
    lag = (i if i < n // 2 else i - n) + frac
    # Most audio ever held back at a frame boundary.
    per_frame = b * FRAME_MS // 1000
    held = max(per_frame * (j + 1) - got for j, got in enumerate(np.cumsum(sizes)))
    return 1000 * (lag + max(held, 0)) / b, sizes


def us_per_frame(make: Callable[[int, int], Stream], a: int, b: int) -> float:
    rng = np.random.default_rng(0)
    frames = _frames(_pcm(rng.normal(0, 5000, a * FRAME_MS * FRAMES_TIMED // 1000)), a)
    runs = []
    for _ in range(REPEATS):
        s = make(a, b)
        feed = s.feed
        t0 = time.perf_counter()
        for f in frames:
            feed(f)
        runs.append((time.perf_counter() - t0) / len(frames) * 1e6)
    return statistics.median(runs)


def main() -> None:
    header = (
        f"{'candidate':<15} {'alias dB':>8} {'delay ms':>11} {'burst ms':>11}"
        f" {'µs 24→8':>8} {'µs 8→24':>8}"
    )
    print(header)
    print("-" * len(header))
    winners, misses = [], []
    for name, make in CANDIDATES.items():
        alias = alias_db(make)
        d_down, sizes_down = delay_ms(make, 24000, 8000)
        d_up, sizes_up = delay_ms(make, 8000, 24000)
        bursts = [n / 8 for n in sizes_down] + [n / 24 for n in sizes_up]
        hi, lo = max(bursts), min(bursts)
        us_down = us_per_frame(make, 24000, 8000)
        us_up = us_per_frame(make, 8000, 24000)
        print(
            f"{name:<15} {alias:>8.1f} {f'{d_down:.1f}/{d_up:.1f}':>11}"
            f" {f'{hi:.1f}/{lo:.1f}':>11} {us_down:>8.1f} {us_up:>8.1f}"
        )
        failed = [
            what
            for what, ok in (
                ("aliases", alias <= -50),
                ("delay", max(d_down, d_up) <= 5),
                ("bursts", hi == lo == FRAME_MS),
            )
            if not ok
        ]
        (misses.append(f"{name} ({', '.join(failed)})") if failed else winners.append(name))
    print()
    print(f"verdict: meets all three: {', '.join(winners) or 'none'}; fails: {'; '.join(misses)}")


if __name__ == "__main__":
    main()
