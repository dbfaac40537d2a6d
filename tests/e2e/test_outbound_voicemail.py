"""Voicemail done right, through the whole service and the local Realtime server: a machine
gets the profile's message after its beep and the call hangs up; a person is greeted only
after they speak, and the agent's record_outcome reaches the audit and the campaign."""

from __future__ import annotations

import dataclasses
import wave
from pathlib import Path

import httpx
import orjson

from service.demo import synthetic_caller
from service.modelserver.script import FunctionCall, ResponseRequest, Script, Turn
from service.peers.twilio.rest import Behaviour, TwilioRestPeer
from tests.conftest import TEST_AUTH_TOKEN
from tests.e2e.test_outbound_calls import ACCOUNT, auth, outbound_service
from tests.support.waiting import eventually

PROFILES = """
[profiles.reminder]
instructions = "You remind {customer_name} of their delivery."
greeting = "Hi {customer_name}, this is Acme about your delivery."
voicemail_message = "Hi {customer_name}, Acme here: your delivery comes tomorrow."
wait_for_callee = true
tools = ["record_outcome", "end_call"]
"""
PERSON, MACHINE = "+13125550100", "+13125550101"


@dataclasses.dataclass
class ReminderScript(Script):
    """Says the voicemail when asked to; greets a person, records the outcome, thanks them."""

    seen: list[tuple[int, str, str]] = dataclasses.field(default_factory=list)

    def turn_for(self, request: ResponseRequest) -> Turn:
        self.seen.append((request.index, request.trigger, request.instructions))
        if "answering machine" in request.instructions:
            return Turn(text=request.instructions.split('"')[1], duration_ms=1200)
        last = request.last_user_item or {}
        if last.get("type") == "function_call_output":
            return Turn(text="Thank you, goodbye.", duration_ms=800)
        return Turn(
            text="Hi Ada, this is Acme about your delivery.",
            duration_ms=1000,
            function_call=FunctionCall("record_outcome", '{"outcome": "confirmed"}'),
        )


def speech_wav(path: Path, text: str) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(synthetic_caller(text))
    return path


async def test_machine_gets_the_message_person_gets_greeted(
    make_service, local_model, tmp_path
) -> None:
    script = ReminderScript(pace=1.0)
    model = await local_model(script)
    profiles = tmp_path / "profiles.toml"
    profiles.write_text(PROFILES)
    async with TwilioRestPeer(ACCOUNT, TEST_AUTH_TOKEN) as twilio:
        twilio.behaviours[PERSON] = Behaviour(
            "person", talk_s=6.0, audio=speech_wav(tmp_path / "hello.wav", "Hello, who is this?")
        )
        twilio.behaviours[MACHINE] = Behaviour("machine", greeting_s=1.5)
        service = await outbound_service(
            make_service, twilio, realtime_backend="local", local_realtime_url=model.url,
            agent_profiles=str(profiles),
        )  # fmt: skip
        async with httpx.AsyncClient(base_url=service.base_url, timeout=10) as http:
            created = await http.post("/v1/campaigns", headers=auth(), json={
                "profile": "reminder", "concurrency": 2, "cps": 10,
                "contacts": [
                    {"contact_id": "person", "phone": PERSON, "customer_name": "Ada"},
                    {"contact_id": "machine", "phone": MACHINE, "customer_name": "Max"},
                    {"contact_id": "nameless", "phone": "+13125550102"},
                ]})  # fmt: skip
            assert created.status_code == 201, created.text
            upload = created.json()["upload"]
            assert upload["added"] == 2
            assert "customer_name" in upload["errors"][0]["error"]
            campaign_id = created.json()["id"]

            async def finished() -> bool:
                status = (await http.get(f"/v1/campaigns/{campaign_id}", headers=auth())).json()
                return status["state"] == "done"

            await eventually(finished, within=40)
            results = (await http.get(f"/v1/campaigns/{campaign_id}/results",
                                      headers=auth())).json()["results"]  # fmt: skip
        by_id = {row["contact_id"]: row for row in results}
        machine, person = by_id["machine"], by_id["person"]
        assert machine["result"] == "voicemail_left", machine
        assert machine["answered_by"] == "machine_end_beep"
        assert person["result"] == "answered" and person["answered_by"] == "human"
        assert person["outcome"] == "confirmed"
        assert by_id["nameless"]["state"] == "rejected"

        store = service.services.store
        machine_call = await store.get_call(machine["call_sid"])
        assert machine_call["end_reason"] == "voicemail_left"
        events = await store.get_events(machine["call_sid"])
        assert any(e["type"] == "answered_by" and e["action"] == "leave_message" for e in events)
        asked = [i for _, _, i in script.seen if "answering machine" in i]
        assert len(asked) == 1
        assert "Hi Max, Acme here: your delivery comes tomorrow." in asked[0]

        # The person: nothing was said before they spoke (no greeting at session open).
        person_turns = [s for s in script.seen if "answering machine" not in s[2]]
        assert person_turns[0][1] == "turn_detection"
        audit = await service.services.audit.call_entries(service.services.redis,
                                                          person["call_sid"])  # fmt: skip
        finished_tools = [e for e in audit if e.get("state") == "finished"]
        assert [e["name"] for e in finished_tools][:1] == ["record_outcome"]
        assert orjson.loads(finished_tools[0]["result"]) == {"recorded": "confirmed"}
