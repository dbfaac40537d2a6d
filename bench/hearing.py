"""Bench: how well the offline engine hears digits over the phone (the hearing corpus).

Run: ``.venv/bin/python bench/hearing.py`` (about five minutes on 2 cores; needs ``.[local]``).
``--dialogue`` also runs every corpus caller through the whole spoken dialogue.

Each order-number and ZIP clip of ``tests/modelserver/engine/corpus`` (144 clips: 6 espeak-ng
voices, the Piper voice, 2 shifted Piper voices), clean and with 15 dB noise, is decoded:

* ``today``: what the engine did before slot-aware hearing — greedy, the "like 3 8 5 0"
  prompt, faster-whisper's temperature fallback;
* ``digits``: the comma-words prompt, beam 5, temperature 0 (best hypothesis);
* ``digits+choice``: the same beam's 5 hypotheses, the first that fits the slot's length,
  else "number" read as "double" if that fits (shown without that rule too).

and read by:

* ``product``: ``service.agent.hotline.orders.spoken_digits`` over the whole transcript
  (the study's baseline reader);
* ``engine``: the engine's :func:`numbers_in` with the slot's lengths (homophones next to a
  digit, edge "oh"/"for" by length); ``engine+to→2`` adds "to"/"too" → 2 next to a digit.

A clip counts only if the digits read equal the digits said. RTF = decode time / audio
length. Benchmarks print; they never pass or fail.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from service.agent.hotline.orders import spoken_digits as product_digits
from service.modelserver.engine.models import whisper_model
from service.modelserver.engine.numbers import numbers_in
from service.modelserver.engine.slots import ORDER, ZIP, Slot, choose
from service.modelserver.engine.stt import DIGIT_PROMPT, WhisperTranscriber
from tests.modelserver.engine.corpus import Clip, clips, pcm

RATE = 8000
_TO = re.compile(
    r"\b(to|too)\b(?=[\s,.-]*(\d|zero|oh|one|two|three|four|five|six|seven|eight|nine))"
)


def read_engine(text: str, slot: Slot) -> str:
    found = numbers_in(text, slot.lengths)
    for _, digits in found:
        if len(digits) in slot.lengths:
            return digits
    return max((d for _, d in found), key=len, default="")


def read_to2(text: str, slot: Slot) -> str:
    return read_engine(_TO.sub("two", text), slot)


READERS = {
    "product": lambda text, slot: product_digits(text),
    "engine": read_engine,
    "engine+to→2": read_to2,
}
ROWS = [  # (decoder, reader)
    ("today", "product"),
    ("today", "engine"),
    ("digits", "product"),
    ("digits", "engine+to→2"),
    ("digits", "engine"),
    ("digits+choice, no number→double", "engine"),
    ("digits+choice", "engine"),
]


def today(stt: WhisperTranscriber, samples: object) -> str:
    segments, _ = whisper_model().transcribe(
        samples,
        language="en",
        beam_size=1,
        without_timestamps=True,
        condition_on_previous_text=False,
        initial_prompt=DIGIT_PROMPT,
        vad_filter=False,
    )
    return " ".join(s.text.strip() for s in segments if s.no_speech_prob < 0.9).strip()


def decode_all(items: list[Clip]) -> dict[tuple[str, bool], dict[str, object]]:
    stt = WhisperTranscriber()
    stt.warm()
    out: dict[tuple[str, bool], dict[str, object]] = {}
    for noisy in (False, True):
        for clip in items:
            audio = pcm(clip, noisy)
            samples = stt._samples(audio, RATE)
            seconds = len(audio) / 2 / RATE
            slot = ZIP if clip.kind == "zip" else ORDER
            t0 = time.perf_counter()
            text0 = today(stt, samples)
            t1 = time.perf_counter()
            hyps = stt.hypotheses(samples)
            t2 = time.perf_counter()
            heard = choose(hyps, slot)
            out[(clip.name, noisy)] = {
                "today": text0,
                "digits": hyps[0] if hyps else "",
                "digits+choice, no number→double": choose(hyps, slot, doubles=False).text,
                "digits+choice": heard.text,
                "confident": heard.confident,
                "rtf_today": (t1 - t0) / seconds,
                "rtf_digits": (t2 - t1) / seconds,
                "s_today": t1 - t0,
                "s_digits": t2 - t1,
            }
    return out


def pct(hits: int, n: int) -> str:
    return f"{100 * hits / n:.0f}% ({hits}/{n})" if n else "—"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--limit", type=int, default=0, help="only the first N clips (quick)")
    args = parser.parse_args()
    items = [c for c in clips() if c.kind in ("order", "zip")]
    if args.limit:
        items = items[: args.limit]
    started = time.perf_counter()
    heard = decode_all(items)
    print(f"{len(items)} clips × clean/noisy decoded in {time.perf_counter() - started:.0f} s\n")

    def correct(clip: Clip, noisy: bool, decoder: str, reader: str) -> bool:
        slot = ZIP if clip.kind == "zip" else ORDER
        text = str(heard[(clip.name, noisy)][decoder])
        return READERS[reader](text, slot) == clip.digits

    groups = {
        "espeak (hard)": [c for c in items if c.group == "espeak"],
        "piper": [c for c in items if c.group == "piper"],
        "piper-varied": [c for c in items if c.group == "piper-varied"],
        "all": items,
    }
    print("## Exact digit-string accuracy by option (clean / noisy 15 dB)\n")
    print("| decoder | reader | " + " | ".join(f"{g} clean | {g} noisy" for g in groups) + " |")
    print("|---|---|" + "---|---|" * len(groups))
    for decoder, reader in ROWS:
        cells = []
        for members in groups.values():
            for noisy in (False, True):
                hits = sum(correct(c, noisy, decoder, reader) for c in members)
                cells.append(pct(hits, len(members)))
        print(f"| {decoder} | {reader} | " + " | ".join(cells) + " |")

    for title, key in (("style", lambda c: c.style), ("voice", lambda c: c.voice)):
        print(f"\n## By {title}: today (greedy, product reader) → after (digits+choice, engine)\n")
        print(f"| {title} | n | clean today | clean after | noisy today | noisy after |")
        print("|---|---|---|---|---|---|")
        buckets: dict[str, list[Clip]] = defaultdict(list)
        for clip in items:
            buckets[key(clip)].append(clip)
        for name, members in sorted(buckets.items()):
            cells = []
            for noisy in (False, True):
                for decoder, reader in (("today", "product"), ("digits+choice", "engine")):
                    cells.append(
                        pct(sum(correct(c, noisy, decoder, reader) for c in members), len(members))
                    )
            print(f"| {name} | {len(members)} | " + " | ".join(cells) + " |")

    print("\n## Confidence of digits+choice (what the dialogue reads back)\n")
    print("| audio | sure & right | sure & wrong | unsure & right | unsure & wrong |")
    print("|---|---|---|---|---|")
    for noisy in (False, True):
        counts = defaultdict(int)
        for clip in items:
            sure = bool(heard[(clip.name, noisy)]["confident"])
            right = correct(clip, noisy, "digits+choice", "engine")
            counts[(sure, right)] += 1
        row = [
            counts[(True, True)],
            counts[(True, False)],
            counts[(False, True)],
            counts[(False, False)],
        ]
        print(f"| {'noisy' if noisy else 'clean'} | " + " | ".join(map(str, row)) + " |")

    print("\n## Real-time factor (decode time / audio length; s per turn)\n")
    print("| decoder | RTF median | RTF p95 | s/turn median | s/turn max |")
    print("|---|---|---|---|---|")
    for decoder in ("today", "digits"):
        rtf = sorted(float(v[f"rtf_{decoder}"]) for v in heard.values())
        sec = sorted(float(v[f"s_{decoder}"]) for v in heard.values())
        p95 = rtf[int(0.95 * (len(rtf) - 1))]
        name = f"{decoder}{' (+choice: same beam)' if decoder == 'digits' else ''}"
        median_rtf, median_s = statistics.median(rtf), statistics.median(sec)
        print(f"| {name} | {median_rtf:.3f} | {p95:.3f} | {median_s:.2f} | {max(sec):.2f} |")
    misses = [
        (c.name, noisy, c.text, heard[(c.name, noisy)]["digits+choice"])
        for c in items
        for noisy in (False, True)
        if not correct(c, noisy, "digits+choice", "engine")
    ]
    print(f"\n## Misses after ({len(misses)}), first 25\n")
    for name, noisy, said, got in misses[:25]:
        print(f"- {name} {'noisy' if noisy else 'clean'}: said {said!r} → heard {got!r}")


if __name__ == "__main__":
    main()
