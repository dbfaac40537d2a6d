"""G.711 μ-law helpers against the reference formulas in protocols.md F.2."""

from __future__ import annotations

import numpy as np
import pytest

from service.audio.g711 import ULAW_SILENCE, pcm16_to_ulaw, ulaw_to_pcm16

_SEG_END = (0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF)


def _ulaw_decode(u: int) -> int:
    u = ~u & 0xFF
    sign, exp, mant = u & 0x80, (u >> 4) & 7, u & 0x0F
    mag = (((mant << 3) + 0x84) << exp) - 0x84
    return -mag if sign else mag


def _ulaw_encode(s: int) -> int:
    v = s >> 2
    mask = 0xFF
    if v < 0:
        v, mask = -v, 0x7F
    v = min(v, 8159) + 0x21
    seg = 0
    while seg < 8 and v > _SEG_END[seg]:
        seg += 1
    if seg >= 8:
        return 0x7F ^ mask
    return ((seg << 4) | ((v >> (seg + 1)) & 0x0F)) ^ mask


ALL_PCM = np.arange(-32768, 32768, dtype="<i2")


def test_all_256_codes_decode_to_table_value() -> None:
    decoded = np.frombuffer(ulaw_to_pcm16(bytes(range(256))), dtype="<i2")
    assert decoded.tolist() == [_ulaw_decode(u) for u in range(256)]
    assert decoded.min() == -32124
    assert decoded.max() == 32124


def test_silence_decodes_to_zero() -> None:
    assert ULAW_SILENCE == 0xFF
    assert ulaw_to_pcm16(bytes([0xFF, 0x7F]) * 80) == b"\x00\x00" * 160


def test_encode_is_bit_exact_with_reference_for_all_inputs() -> None:
    encoded = pcm16_to_ulaw(ALL_PCM.tobytes())
    assert encoded == bytes(_ulaw_encode(int(s)) for s in ALL_PCM)


def test_zero_encodes_to_silence() -> None:
    assert pcm16_to_ulaw(b"\x00\x00" * 4) == bytes([ULAW_SILENCE]) * 4


# protocols.md F.2 gives 8/32/128/512/~644; the first four hold for x >= 0.  Negative inputs lose
# up to 3 more because the encoder's `s >> 2` rounds toward minus infinity.
@pytest.mark.parametrize(
    ("lo", "hi", "pos_bound", "neg_bound"),
    [
        (0, 256, 8, 11),
        (256, 1024, 32, 35),
        (1024, 4096, 128, 131),
        (4096, 16384, 512, 515),
        (16384, 32769, 643, 644),
    ],
)
def test_round_trip_error_bounds(lo: int, hi: int, pos_bound: int, neg_bound: int) -> None:
    x = ALL_PCM.astype(np.int64)
    y = np.frombuffer(ulaw_to_pcm16(pcm16_to_ulaw(ALL_PCM.tobytes())), dtype="<i2")
    err = np.abs(y.astype(np.int64) - x)
    band = (np.abs(x) >= lo) & (np.abs(x) < hi)
    assert err[band & (x >= 0)].max() == pos_bound
    assert err[band & (x < 0)].max() == neg_bound
