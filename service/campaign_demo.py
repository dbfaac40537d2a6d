"""``python -m service campaign demo``: a ten-contact campaign on one machine, offline.

The service on loopback (embedded Redis unless ``REDIS_URL`` is set), the local Realtime
server with a scripted reminder agent, and the Twilio REST peer playing every callee: six
people (they say hello, the agent greets them and records "confirmed"), two answering
machines (greeting, beep, then our voicemail message), one busy line, one number on the
do-not-call list. Prints a live progress line and the results table; about 20 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import secrets
import sys
import tempfile
import time
import wave
from pathlib import Path

from service.campaigns.policy import RetryPolicy
from service.campaigns.report import progress_line, results_table
from service.campaigns.rules import CampaignRules
from service.demo import synthetic_caller
from service.logging import configure_logging
from service.modelserver.script import FunctionCall, ResponseRequest, Script, Turn
from service.modelserver.server import LocalRealtimeServer
from service.peers.twilio.rest import Behaviour, TwilioRestPeer
from service.serving import RunningService, free_port
from service.settings import Settings

__all__ = ["ReminderScript", "run_campaign_demo"]

PROFILES = """
[profiles.reminder]
instructions = "You call {customer_name} to confirm delivery of order {order_number}."
greeting = "Hi {customer_name}, this is Acme about your order {order_number}."
voicemail_message = "Hi {customer_name}, this is Acme. Order {order_number} arrives tomorrow."
wait_for_callee = true
tools = ["record_outcome", "end_call"]
"""
PEOPLE = [f"+1312555{i:04d}" for i in range(100, 106)]
MACHINES = ["+12125550150", "+12125550151"]
BUSY, DO_NOT_CALL = "+14155550160", "+14155550170"


@dataclasses.dataclass
class ReminderScript(Script):
    """The reminder agent, scripted: voicemail text when asked, else greet → record the
    outcome → say goodbye and end the call."""

    def turn_for(self, request: ResponseRequest) -> Turn:
        if "answering machine" in request.instructions:
            return Turn(text=request.instructions.split('"')[1], duration_ms=2000)
        last = request.last_user_item or {}
        if last.get("type") == "function_call_output" and "recorded" in str(last):
            return Turn(
                text="Thanks, see you tomorrow. Goodbye!",
                duration_ms=1200,
                function_call=FunctionCall("end_call", '{"reason": "caller_done"}'),
            )
        if last.get("type") == "function_call_output":
            return Turn(text="", duration_ms=1)
        return Turn(
            text="Hi, this is Acme about your order. It arrives tomorrow. Does that work?",
            duration_ms=1500,
            function_call=FunctionCall("record_outcome", '{"outcome": "confirmed"}'),
        )


def _hello_wav(folder: Path) -> Path:
    path = folder / "hello.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(synthetic_caller("Hello, who is calling?"))
    return path


async def run_campaign_demo(*, timeout_s: float = 90.0) -> int:
    base = Settings()
    configure_logging(base.log_format, "warning")
    auth_token = secrets.token_hex(16)
    account = "AC" + secrets.token_hex(16)
    port = free_port()
    async with contextlib.AsyncExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        profiles = folder / "profiles.toml"
        profiles.write_text(PROFILES)
        model = await stack.enter_async_context(LocalRealtimeServer(ReminderScript(pace=1.0)))
        twilio = await stack.enter_async_context(TwilioRestPeer(account, auth_token))
        hello = _hello_wav(folder)
        for number in PEOPLE:
            twilio.behaviours[number] = Behaviour("person", talk_s=8.0, audio=hello)
        for number in MACHINES:
            twilio.behaviours[number] = Behaviour("machine", greeting_s=2.0)
        twilio.behaviours[BUSY] = Behaviour("busy")
        settings = Settings(
            public_url=f"http://127.0.0.1:{port}",
            redis_url=base.redis_url,
            redis_key_prefix=f"demo-{secrets.token_hex(3)}:",
            twilio_account_sid=account,
            twilio_auth_token=auth_token,
            twilio_api_base_url=twilio.base_url,
            realtime_backend="local",
            local_realtime_url=model.url,
            agent_profiles=str(profiles),
            outbound_from_number="+14155550100",
            twilio_account_cps=5.0,
        )  # type: ignore[call-arg]
        service = await stack.enter_async_context(RunningService(settings, port))
        campaigns = service.services.campaigns
        assert campaigns is not None

        await campaigns.store.add_dnc([DO_NOT_CALL])
        retry = RetryPolicy.from_json({"max_attempts": 2, "rules": {"busy": {"delay_s": 3}}})
        rules = CampaignRules(
            profile="reminder", name="demo", concurrency=3, cps=2.0,
            default_timezone="America/New_York", retry=retry,
        )  # fmt: skip
        campaign_id = await campaigns.create(rules)
        numbers = [*PEOPLE, *MACHINES, BUSY, DO_NOT_CALL]
        rows = ["contact_id,phone,customer_name,order_number"]
        rows += [f"c{i + 1:02d},{n},Customer {i + 1},{4200 + i}" for i, n in enumerate(numbers)]
        upload = await campaigns.upload(campaign_id, "\n".join(rows), "csv")
        print(f"campaign {campaign_id}: {upload['added']} contacts "
              f"(6 people, 2 answering machines, 1 busy, 1 on the do-not-call list)")  # fmt: skip
        started = time.monotonic()
        status: dict[str, object] = {}
        tty, shown = sys.stdout.isatty(), ""
        while time.monotonic() - started < timeout_s:
            status = await campaigns.status(campaign_id)
            line = progress_line(status)
            if tty:
                print(f"\r{line}", end="", flush=True)
            elif line != shown:
                print(line, flush=True)
            shown = line
            if status["state"] == "done":
                break
            await asyncio.sleep(0.5)
        elapsed = time.monotonic() - started
        print("\n" if tty else "")
        print(f"finished in {elapsed:.1f} s; the carrier saw at most {twilio.max_live} live "
              "calls (cap 3)\n")  # fmt: skip
        print(results_table(await campaigns.results(campaign_id)))
        return 0 if status.get("state") == "done" else 1
