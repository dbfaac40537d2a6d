"""Keypad digits: gathered, then sent at "#" or after a pause."""

from __future__ import annotations

import asyncio

from service.calls.dtmf import DtmfCollector


async def test_dtmf_sent_at_hash_or_after_a_pause() -> None:
    got: list[list[str]] = []

    async def deliver(digits: list[str]) -> None:
        got.append(digits)

    dtmf = DtmfCollector(0.05, deliver)
    for digit in "42#":
        await dtmf.add(digit)
    await dtmf.add("7")
    assert got == [["4", "2", "#"]]
    await asyncio.sleep(0.1)
    assert got == [["4", "2", "#"], ["7"]]
    await dtmf.add("1")
    dtmf.close()
    await asyncio.sleep(0.1)
    assert got == [["4", "2", "#"], ["7"]]
