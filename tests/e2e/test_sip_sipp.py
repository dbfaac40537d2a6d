"""Calls placed by SIPp (Debian's sip-tester), the reference SIP load tool, at the SIP edge.

``uac_pcap`` is SIPp's embedded scenario: PCMA audio from a pcap (30 ms packets), the digit 1
as RFC 4733 events (end packet three times), then BYE (sip-and-outbound.md §2.2). Our own
``uac_pcmu.xml`` streams raw μ-law with ``rtp_stream``.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from service.serving import free_port
from service.telephony.sip.server import call_sid_for
from tests.e2e.test_sip_call import sip_service

SIPP = shutil.which("sipp")
SIPP_DATA = Path("/usr/share/sip-tester")
SCENARIOS = Path(__file__).parent / "sipp"


async def run_sipp(args: list[str], cwd: Path, timeout: float = 60.0) -> tuple[int, str]:  # noqa: ASYNC109
    assert SIPP, "sipp (Debian package sip-tester) is required: .ci/run installs it"
    process = await asyncio.create_subprocess_exec(
        SIPP,
        *args,
        "-i",
        "127.0.0.1",
        "-p",
        str(free_port()),
        "-m",
        "1",
        "-nostdin",
        "-timeout",
        f"{int(timeout)}s",
        "-trace_err",
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout + 10)
    return process.returncode or 0, output.decode(errors="replace")


async def test_sipp_uac_pcap_call_with_pcma_and_a_digit(
    make_service, local_model, tmp_path
) -> None:
    service, _ = await sip_service(make_service, local_model)
    (tmp_path / "pcap").symlink_to(SIPP_DATA)
    port = service.services.sip.port
    code, output = await run_sipp(["-sn", "uac_pcap", f"127.0.0.1:{port}"], tmp_path)
    assert code == 0, output[-2000:]
    assert "Successful call        |        0                  |        1" in output
    await service.services.writer.flush(timeout=5)
    store = service.services.store
    [call_sid] = [call_sid_for(call_id) for call_id in await sip_call_ids(service)]
    record = await store.get_call(call_sid)
    assert record["end_reason"] == "caller_hangup"
    # 236 PCMA packets of 30 ms from the pcap; the telephone-events are not audio.
    assert int(record["rtp_packets_in"]) == 236
    events = await store.get_events(call_sid)
    assert [e["digit"] for e in events if e["type"] == "dtmf"] == ["1"]  # end packet ×3 → once


async def test_sipp_pcmu_caller_is_heard_and_answered(make_service, local_model, tmp_path) -> None:
    from service.audio.g711 import pcm16_to_ulaw
    from service.demo import synthetic_caller

    service, _ = await sip_service(make_service, local_model)
    (tmp_path / "speech.ulaw").write_bytes(pcm16_to_ulaw(synthetic_caller("Where is my order?")))
    port = service.services.sip.port
    scenario = str(SCENARIOS / "uac_pcmu.xml")
    code, output = await run_sipp(["-sf", scenario, f"127.0.0.1:{port}"], tmp_path)
    assert code == 0, output[-2000:]
    await service.services.writer.flush(timeout=5)
    [call_id] = await sip_call_ids(service)
    store = service.services.store
    record = await store.get_call(call_sid_for(call_id))
    assert record["end_reason"] == "caller_hangup"
    assert int(record["rtp_packets_in"]) == 60 and int(record["rtp_wrong_payload_type"]) == 0
    events = await store.get_events(call_sid_for(call_id))
    # The caller's speech reached the model, which answered it (the scripted reply).
    assert sum(e["type"] == "response" for e in events) >= 2


async def sip_call_ids(service) -> list[str]:  # type: ignore[no-untyped-def]
    prefix = service.services.settings.redis_key_prefix
    ids = []
    async for key in service.services.redis.scan_iter(f"{prefix}call:*"):
        key = key.decode() if isinstance(key, bytes) else key
        if key.count(":") == 2 and not key.endswith(":events"):
            value = await service.services.redis.hget(key, "sip_call_id")
            if value:
                ids.append(value.decode() if isinstance(value, bytes) else value)
    return ids
