"""Every setting, read from the environment (or a ``.env`` file) in one place.

The README's configuration table is the operator-facing copy of this module: keep them in step.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    # --- Public address and Twilio ---------------------------------------------------------
    public_url: str = Field(
        "http://127.0.0.1:8080",
        description="Base URL Twilio uses to reach this service (scheme://host[:port]).",
    )
    twilio_account_sid: str = ""
    twilio_auth_token: SecretStr = SecretStr("")
    twilio_validate_signatures: bool = Field(
        True, description="Only an explicit false turns checks off while an auth token is set."
    )
    # Key for per-call stream tokens; empty: the Twilio auth token, else a per-process random key.
    stream_token_secret: SecretStr = SecretStr("")
    stream_token_ttl_seconds: int = 300

    # --- Redis -----------------------------------------------------------------------------
    redis_url: str = Field("", description="Empty: an embedded in-process Redis (fakeredis).")
    redis_key_prefix: str = "va:"
    call_ttl_seconds: int = 86_400
    store_max_pending: int = 10_000

    # --- Realtime model ---------------------------------------------------------------------
    realtime_backend: Literal["openai", "azure", "gemini", "local", "none"] = Field(
        "local", description="none: no model (a silent agent; for carrier-only testing)."
    )
    openai_api_key: SecretStr = SecretStr("")
    openai_realtime_url: str = "wss://api.openai.com/v1/realtime"
    openai_realtime_model: str = "gpt-realtime"
    local_realtime_url: str = "ws://127.0.0.1:8765/v1/realtime"
    azure_openai_endpoint: str = ""
    azure_openai_api_key: SecretStr = SecretStr("")
    azure_openai_deployment: str = ""
    gemini_api_key: SecretStr = SecretStr("")
    # Empty: Google's public BidiGenerateContent endpoint (protocols.md D.1).
    gemini_live_url: str = ""
    gemini_model: str = ""
    gemini_voice: str = Field("", description="Empty: the profile's voice, mapped to Gemini's.")
    # 8 kHz as declared: the phone band holds nothing above 3.4 kHz (see realtime/gemini.py).
    gemini_input_rate: Literal[8000, 16000] = 8000
    audio_mode: Literal["transcode", "passthrough"] = "transcode"
    # Override the default agent profile's fields when set (AGENT_PROFILES holds the rest).
    agent_instructions: str = ""
    agent_voice: str = ""
    agent_greeting: str = Field("", description="The agent's first words (said verbatim).")
    vad_threshold: float = 0.5
    vad_prefix_padding_ms: int = 300
    vad_silence_duration_ms: int = 500
    vad_idle_timeout_ms: int | None = None
    input_transcription_model: str = ""
    model_ready_timeout_seconds: float = 5.0
    # A response.create the model neither starts nor refuses within this is asked once more,
    # then given up (service/calls/responses.py): later tool answers must not wait forever.
    response_ack_timeout_seconds: float = Field(5.0, gt=0)

    # --- Model session survival (issue 17; service/calls/survival.py) -------------------------
    # A dropped OpenAI/Azure/local session is replaced by a fresh one told the conversation so
    # far: up to this many attempts (0: a drop ends the call, as before), each within the
    # timeout, the second after the backoff and each later one after twice the last.
    model_reconnect_attempts: int = Field(3, ge=0, le=10)
    model_reconnect_backoff_seconds: float = Field(0.2, ge=0, le=5)
    model_reconnect_attempt_timeout_seconds: float = Field(1.5, gt=0, le=30)
    # Roll to a fresh session between turns once a session is this old (OpenAI closes one at
    # 60 minutes); 0 never rolls.
    model_session_max_seconds: float = Field(3300.0, ge=0)
    # Caller audio held while there is no session; beyond it frames are dropped and counted.
    model_gap_audio_ms: int = Field(3000, ge=20, le=30_000)

    # --- The local engine (python -m service realtime-server; service/modelserver/) ----------
    local_engine: Literal["", "speech", "synthetic"] = Field(
        "", description="Empty: speech if the [local] extra is installed, else synthetic."
    )
    local_tts: Literal["piper", "espeak"] = "piper"
    local_stt_model: str = Field("", description="A CTranslate2 Whisper directory; empty: tiny.en.")
    local_tts_voice: str = Field("", description="A Piper .onnx voice; empty: the installed one.")
    # Transcribe once the caller has paused this long (before the VAD ends the turn); "off".
    local_early_stt_ms: int | None = 200
    # Digits turns: beam width, and how many of its hypotheses may be chosen by length.
    local_stt_beam_size: int = Field(5, ge=1, le=10)
    local_stt_alternatives: int = Field(5, ge=1, le=10)
    llm_base_url: str = Field("", description="OpenAI-compatible chat completions for replies.")
    llm_api_key: SecretStr = SecretStr("")
    llm_model: str = ""
    llm_timeout_seconds: float = 30.0
    # The model session opens at the voice webhook; unclaimed by a stream after this, it closes.
    prewarm_timeout_seconds: float = 15.0

    # --- Agent, tools and audit -------------------------------------------------------------
    agent_profiles: str = Field("", description="TOML file of per-number agent profiles.")
    tool_filler_ms: int = 700
    dtmf_pause_ms: int = 2000
    audit_maxlen: int = 100_000
    transfer_default_number: str = ""
    # Transfers only to targets starting with one of these (e.g. "+1,sip:"); empty: any.
    # The model chooses the target, so a caller could talk it into dialling anywhere.
    transfer_allowed_prefixes: tuple[str, ...] = ()
    # Twilio's REST API; overridable so tests (and regional edges) can point elsewhere.
    twilio_api_base_url: str = "https://api.twilio.com"

    # --- OpenAI realtime calls (SIP; service/telephony/openai_calls/) -----------------------
    # Enables POST /openai/webhook; the Standard Webhooks secret ("whsec_…") from OpenAI's
    # dashboard. The sideband connects to OPENAI_REALTIME_URL?call_id=… with OPENAI_API_KEY.
    openai_webhook_secret: SecretStr = SecretStr("")
    # The REST base the openai SDK uses (empty: https://api.openai.com/v1); a stand-in in tests.
    openai_base_url: str = ""
    # Bearer token a browser (or its operator page) must show at POST /v1/webrtc/session;
    # empty: that route is off.
    webrtc_session_token: SecretStr = SecretStr("")

    # --- Operator API and outbound calls (service/operator_api.py, service/campaigns/) ---------
    # Bearer tokens for /v1/* and GET /calls/{sid}, comma-separated; empty: those routes
    # answer 401 to everyone (the operator API is closed until a token is configured).
    api_tokens: SecretStr = SecretStr("")
    outbound_from_number: str = Field("", description="Default caller id for outbound calls.")
    outbound_ring_timeout_seconds: int = Field(30, ge=5, le=600)
    outbound_time_limit_seconds: int = Field(600, ge=10, le=14_400)
    # auto: Twilio AMD DetectMessageEnd when the profile leaves a voicemail, else Enable.
    outbound_machine_detection: Literal["auto", "Enable", "DetectMessageEnd", "off"] = "auto"
    # Twilio's default is 1 call per second per account: the dialer's global pace cap.
    twilio_account_cps: float = Field(1.0, gt=0)
    campaign_dispatcher: bool = Field(True, description="Run the campaign dispatcher here.")
    campaign_lease_seconds: float = Field(30.0, gt=0)
    campaign_default_timezone: str = "America/New_York"

    # --- Operator's window: dashboard /ui and browser softphone /phone (service/ui/) ----------
    # Log in with one of API_TOKENS; the session cookie is signed with this secret. Empty: a
    # per-process random secret (sessions end at restart and do not carry across replicas).
    ui_session_secret: SecretStr = SecretStr("")
    ui_session_ttl_seconds: int = Field(8 * 3600, ge=60)
    # Show caller/callee numbers as +1•••••••0001 (all but the last four digits hidden).
    ui_mask_numbers: bool = True
    # A wrong login token is answered only after this delay (slows guessing).
    ui_login_delay_seconds: float = Field(1.0, ge=0)
    # Live feeds (server-sent events) this process serves at once; each reconnects hourly.
    ui_max_streams: int = Field(50, ge=1)
    ui_stream_max_age_seconds: float = Field(3600.0, gt=0)

    # --- Media stream ----------------------------------------------------------------------
    max_frame_bytes: int = 64 * 1024

    # --- SIP trunk (service/telephony/sip/; README "SIP trunk") ------------------------------
    # host:port for SIP over UDP, e.g. 0.0.0.0:5060; empty: the SIP edge is off.
    sip_listen: str = ""
    # The address a trunk reaches us at, written into Contact and SDP (set it behind NAT);
    # empty: the listen host (or 127.0.0.1 when listening on every interface).
    sip_public_address: str = ""
    sip_rtp_ports: str = Field("20000-20999", description="UDP range for RTP, first-last.")
    # Comma-separated CIDRs whose requests are taken without digest; others are challenged
    # when SIP_USERNAME/SIP_PASSWORD are set, else refused with 403.
    sip_allowed_sources: str = "127.0.0.0/8,::1/128"
    sip_username: str = ""
    sip_password: SecretStr = SecretStr("")
    # How long a gap in the caller's RTP may wait for a late packet before silence fills it.
    sip_jitter_ms: int = Field(60, ge=0, le=200)
    # No caller RTP for this long ends the call (reason rtp_timeout).
    sip_rtp_timeout_seconds: float = 30.0
    # host:port outbound INVITEs go to (your trunk's termination URI); empty: no SIP dialling.
    sip_outbound_proxy: str = ""
    # host:port of a registrar to keep us registered at (as SIP_USERNAME, with digest);
    # empty: no REGISTER (the trunk sends calls to SIP_LISTEN by address).
    sip_registrar: str = ""

    # --- Operations -------------------------------------------------------------------------
    # Calls this process takes at once (streams plus calls between webhook and stream); beyond
    # it the voice webhook refuses with busy TwiML (or dials OVERFLOW_NUMBER) and /readyz says
    # "full", so a load balancer sends new calls elsewhere. 0: no limit.
    max_calls: int = Field(0, ge=0)
    overflow_number: str = Field("", description="Where calls go when this process is full.")
    drain_fallback_number: str = Field("", description="Where new calls go while draining.")
    drain_timeout_seconds: float = 30.0

    # --- Logs ------------------------------------------------------------------------------
    log_format: Literal["json", "console"] = "console"
    log_level: str = "info"

    # --- Service ---------------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = 8080

    @field_validator("local_early_stt_ms", mode="before")
    @classmethod
    def _early_stt_off(cls, value: object) -> object:
        """``off`` (or 0) turns early transcription off; empty keeps the default."""
        if isinstance(value, str):
            value = value.strip().lower()
            if value in ("off", "none", "0"):
                return None
            return value or 200
        return None if value == 0 else value

    @field_validator("public_url")
    @classmethod
    def _strip_trailing_slash(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("PUBLIC_URL must look like https://host[:port]")
        return value.rstrip("/")

    @field_validator("sip_listen", "sip_outbound_proxy", "sip_registrar")
    @classmethod
    def _check_sip_address(cls, value: str, info: ValidationInfo) -> str:
        if value:
            host, _, port = value.rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"{info.field_name.upper()} must look like host:port")
        return value

    @field_validator("sip_rtp_ports")
    @classmethod
    def _check_rtp_ports(cls, value: str) -> str:
        first, _, last = value.partition("-")
        if not (first.isdigit() and last.isdigit() and 0 < int(first) <= int(last) < 65536):
            raise ValueError("SIP_RTP_PORTS must look like 20000-20999")
        return value

    @property
    def sip_rtp_port_range(self) -> tuple[int, int]:
        first, _, last = self.sip_rtp_ports.partition("-")
        return int(first), int(last)

    @property
    def sip_allowed_networks(self) -> tuple[str, ...]:
        return tuple(part.strip() for part in self.sip_allowed_sources.split(",") if part.strip())

    @property
    def public_host(self) -> str:
        """``host[:port]`` as Twilio sees it (what it signs and connects to)."""
        return urlsplit(self.public_url).netloc

    @property
    def public_ws_scheme(self) -> str:
        return "wss" if urlsplit(self.public_url).scheme == "https" else "ws"

    @property
    def signatures_enforced(self) -> bool:
        """Checked whenever a token is set, unless explicitly switched off."""
        return bool(self.twilio_auth_token.get_secret_value()) and self.twilio_validate_signatures

    @property
    def operator_tokens(self) -> tuple[str, ...]:
        """The configured API_TOKENS (blank entries dropped)."""
        raw = self.api_tokens.get_secret_value()
        return tuple(token.strip() for token in raw.split(",") if token.strip())

    @property
    def embedded_redis(self) -> bool:
        return not self.redis_url

    def missing_for(self, backend: str) -> str | None:
        """What ``backend`` lacks to open a single session, in one line; None if nothing.
        Checked at start for every backend a profile can use, so a misconfiguration fails
        the process at once instead of ending every call with ``model_unavailable``."""
        needs: dict[str, list[tuple[str, object]]] = {
            "openai": [("OPENAI_API_KEY", self.openai_api_key.get_secret_value())],
            "azure": [
                ("AZURE_OPENAI_ENDPOINT", self.azure_openai_endpoint),
                ("AZURE_OPENAI_API_KEY", self.azure_openai_api_key.get_secret_value()),
                ("AZURE_OPENAI_DEPLOYMENT", self.azure_openai_deployment),
            ],
            "gemini": [("GEMINI_API_KEY", self.gemini_api_key.get_secret_value())],
        }
        missing = [name for name, value in needs.get(backend, []) if not value]
        if not missing:
            return None
        return f"REALTIME_BACKEND {backend!r} needs {', '.join(missing)}, which is not set"


def load_settings(**overrides: object) -> Settings:
    return Settings(**overrides)  # type: ignore[arg-type]
