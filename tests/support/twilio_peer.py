"""Raw Twilio-side helpers for tests that need to send frames the softphone never would."""

from __future__ import annotations

import secrets
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import httpx
import orjson
from twilio.request_validator import RequestValidator
from websockets.asyncio.client import ClientConnection, connect


def sign(token: str, url: str, params: dict[str, str]) -> str:
    return RequestValidator(token).compute_signature(url, params)


@dataclass
class OpenedCall:
    ws: ClientConnection
    call_sid: str
    stream_sid: str
    parameters: dict[str, str]

    async def send(self, message: dict | str | bytes) -> None:
        if isinstance(message, dict):
            message = orjson.dumps({"streamSid": self.stream_sid, **message}).decode()
        await self.ws.send(message)


async def post_webhook(
    base_url: str, token: str, path: str, params: dict[str, str], *, signature: str | None = None
) -> httpx.Response:
    url = base_url + path
    headers = {
        "X-Twilio-Signature": signature if signature is not None else sign(token, url, params)
    }
    async with httpx.AsyncClient(timeout=5) as client:
        return await client.post(url, data=params, headers=headers)


def inbound_params(call_sid: str, **extra: str) -> dict[str, str]:
    return {
        "CallSid": call_sid,
        "AccountSid": "AC" + "0" * 32,
        "From": "+15550100001",
        "To": "+15550100002",
        "CallStatus": "ringing",
        "Direction": "inbound",
        "ApiVersion": "2010-04-01",
        **extra,
    }


def stream_from_twiml(xml: str) -> tuple[str, dict[str, str]]:
    stream = ET.fromstring(xml).find("./Connect/Stream")
    assert stream is not None, xml
    params = {p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter")}
    return stream.get("url", ""), params


async def open_call(
    base_url: str,
    token: str,
    *,
    call_sid: str | None = None,
    send_start: bool = True,
    start_overrides: dict | None = None,
) -> OpenedCall:
    """Webhook → TwiML → signed upgrade → connected (+ start), as Twilio does."""
    call_sid = call_sid or "CA" + secrets.token_hex(16)
    response = await post_webhook(base_url, token, "/twilio/voice", inbound_params(call_sid))
    assert response.status_code == 200, response.text
    stream_url, parameters = stream_from_twiml(response.text)
    ws_url = base_url.replace("http", "ws", 1) + "/twilio/media"
    ws = await connect(
        ws_url,
        additional_headers={"X-Twilio-Signature": sign(token, stream_url, {})},
        compression=None,
        open_timeout=5,
    )
    stream_sid = "MZ" + secrets.token_hex(16)
    opened = OpenedCall(ws, call_sid, stream_sid, parameters)
    await ws.send(
        orjson.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}).decode()
    )
    if send_start:
        start = {
            "streamSid": stream_sid,
            "accountSid": "AC" + "0" * 32,
            "callSid": call_sid,
            "tracks": ["inbound"],
            "customParameters": parameters,
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            **(start_overrides or {}),
        }
        await opened.send({"event": "start", "sequenceNumber": "1", "start": start})
    return opened


def media(payload_b64: str, chunk: int = 1) -> dict:
    return {
        "event": "media",
        "sequenceNumber": str(chunk + 1),
        "media": {
            "track": "inbound",
            "chunk": str(chunk),
            "timestamp": str(chunk * 20),
            "payload": payload_b64,
        },
    }
