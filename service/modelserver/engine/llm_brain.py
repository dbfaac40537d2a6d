"""A brain backed by any OpenAI-compatible chat completions endpoint with tool calling.

Configured by ``LLM_BASE_URL`` (e.g. ``http://127.0.0.1:11434/v1`` for Ollama, or a vLLM /
llama.cpp server), ``LLM_API_KEY`` (optional) and ``LLM_MODEL``. The mapping, both ways:

* session ``instructions`` (or the response's) → the ``system`` message;
* user items → ``user`` messages (audio as its transcript); assistant message items →
  ``assistant`` messages; a response's ``function_call`` items → one ``assistant`` message
  with ``tool_calls`` (``id`` = the Realtime ``call_id``); ``function_call_output`` items →
  ``tool`` messages (``tool_call_id`` = ``call_id``);
* session ``tools`` (``{"type": "function", "name", "description", "parameters"}``) →
  chat ``tools`` (``{"type": "function", "function": {…}}``); ``tool_choice`` likewise;
* the reply's ``content`` → the spoken message, its ``tool_calls`` → ``function_call``
  items of the same response (their ``id`` becomes the ``call_id``).

Streamed (``"stream": true``, server-sent events): :meth:`LlmBrain.decide` returns as soon as
the first words arrive (or, for a reply that is only tool calls, when it ends), and the rest
is read while the first sentence is already being synthesized and played — so the caller
hears the agent no later than the rule-based brain would plus the model's first-token time,
instead of after the whole completion. Tool-call deltas are assembled by ``index``.
A failed request fails the response (``server_error``); a stream that breaks after the first
words ends the reply where it broke. Memory: one request body and the reply so far; the
conversation is rebuilt per request.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import Any

import httpx
import orjson
import structlog

from service.modelserver.engine.base import BrainRequest, Decision, ReplyStream, item_text
from service.modelserver.turns import FunctionCall
from service.settings import Settings

log = structlog.get_logger(__name__)

__all__ = ["LlmBrain", "LlmConfig", "chat_messages", "chat_tools", "llm_config"]


class LlmConfig:
    """Where the LLM is (``LLM_BASE_URL``/``LLM_API_KEY``/``LLM_MODEL`` in the settings)."""

    def __init__(self, base_url: str, api_key: str = "", model: str = "", timeout: float = 30.0):
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.model = model
        self.timeout = timeout

    def __repr__(self) -> str:  # never shows the key
        return f"LlmConfig(base_url={self.base_url!r}, model={self.model!r})"


def llm_config(settings: Settings) -> LlmConfig | None:
    """The LLM from ``settings``; None when no base URL is set (the built-in dialogue
    engine is used)."""
    if not settings.llm_base_url:
        return None
    return LlmConfig(
        settings.llm_base_url,
        settings.llm_api_key.get_secret_value(),
        settings.llm_model,
        settings.llm_timeout_seconds,
    )


def chat_tools(tools: tuple[dict[str, Any], ...]) -> list[dict[str, Any]]:
    out = []
    for tool in tools:
        if tool.get("type", "function") != "function":
            continue
        function = {"name": tool["name"], "parameters": tool.get("parameters") or {}}
        if tool.get("description"):
            function["description"] = tool["description"]
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: Any) -> Any:
    if isinstance(choice, dict) and choice.get("name"):
        return {"type": "function", "function": {"name": choice["name"]}}
    return choice if choice in ("auto", "none", "required") else "auto"


def _tool_call(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": item.get("call_id"),
        "type": "function",
        "function": {"name": item.get("name"), "arguments": item.get("arguments") or "{}"},
    }


def chat_messages(request: BrainRequest) -> list[dict[str, Any]]:
    """The conversation as chat messages (see the module docstring for the mapping)."""
    messages: list[dict[str, Any]] = []
    if request.instructions:
        messages.append({"role": "system", "content": request.instructions})
    open_turn: dict[str, Any] | None = None  # the assistant message of the current response
    open_response: str | None = None
    for item, response_id in zip(request.items, request.response_ids, strict=False):
        kind, role = item.get("type"), item.get("role")
        if kind in ("message", "function_call") and role != "user" and response_id:
            if open_turn is None or response_id != open_response:
                open_turn = {"role": "assistant", "content": None}
                open_response = response_id
                messages.append(open_turn)
            if kind == "message":
                open_turn["content"] = item_text(item)
            else:
                open_turn.setdefault("tool_calls", []).append(_tool_call(item))
            continue
        open_turn = open_response = None
        if kind == "message":
            text = item_text(item)
            if text:
                chat_role = role if role in ("user", "system") else "assistant"
                messages.append({"role": chat_role, "content": text})
        elif kind == "function_call":  # created by the client (no response id)
            calls = [_tool_call(item)]
            messages.append({"role": "assistant", "content": None, "tool_calls": calls})
        elif kind == "function_call_output":
            messages.append(
                {"role": "tool", "tool_call_id": item.get("call_id"), "content": item.get("output")}
            )
    return messages


class LlmBrain:
    """:class:`~service.modelserver.engine.base.Brain` over chat completions (httpx)."""

    def __init__(self, config: LlmConfig, client: httpx.Client | None = None) -> None:
        self.config = config
        headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
        self.client = client or httpx.Client(timeout=config.timeout, headers=headers)

    def body(self, request: BrainRequest) -> dict[str, Any]:
        body: dict[str, Any] = {"messages": chat_messages(request), "stream": True}
        if self.config.model:
            body["model"] = self.config.model
        tools = chat_tools(request.tools)
        if tools:
            body["tools"] = tools
            body["tool_choice"] = _tool_choice(request.tool_choice)
        if isinstance(request.max_output_tokens, int):
            body["max_tokens"] = request.max_output_tokens
        return body

    def decide(self, request: BrainRequest) -> Decision:
        url = f"{self.config.base_url}/chat/completions"
        post = self.client.build_request("POST", url, json=self.body(request))
        response = self.client.send(post, stream=True)
        handed_over = False
        try:
            response.raise_for_status()
            if "text/event-stream" not in response.headers.get("content-type", ""):
                return _whole(orjson.loads(response.read()))  # a server that ignores "stream"
            deltas = _deltas(response.iter_lines())
            calls = _Calls()
            for delta in deltas:
                calls.add(delta)
                if delta.get("content"):  # words: speak them while the rest arrives
                    rest = partial(_rest, str(delta["content"]), deltas, calls, response)
                    handed_over = True  # the stream closes the response when it ends
                    return Decision(stream=ReplyStream(rest))
            return Decision(calls=calls.done())
        finally:
            if not handed_over:
                response.close()

    def close(self) -> None:
        self.client.close()


class _Calls:
    """Tool calls assembled from streamed deltas (by ``index``)."""

    def __init__(self) -> None:
        self.parts: dict[int, dict[str, str]] = {}

    def add(self, delta: dict[str, Any]) -> None:
        for call in delta.get("tool_calls") or []:
            part = self.parts.setdefault(
                int(call.get("index", 0)), {"id": "", "name": "", "args": ""}
            )
            part["id"] = call.get("id") or part["id"]
            function = call.get("function") or {}
            part["name"] += function.get("name") or ""
            arguments = function.get("arguments")
            if arguments is not None and not isinstance(arguments, str):  # sent as an object
                arguments = orjson.dumps(arguments).decode()
            part["args"] += arguments or ""

    def done(self) -> tuple[FunctionCall, ...]:
        return tuple(
            FunctionCall(p["name"], p["args"] or "{}", p["id"] or None)
            for _, p in sorted(self.parts.items())
        )


def _deltas(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """The ``choices[0].delta`` of each server-sent event, until ``[DONE]``."""
    for line in lines:
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            return
        choices = orjson.loads(data).get("choices") or [{}]
        yield choices[0].get("delta") or {}


def _rest(
    first: str,
    deltas: Iterator[dict[str, Any]],
    calls: _Calls,
    response: httpx.Response,
    reply: ReplyStream,
) -> Iterator[str]:
    try:
        yield first
        for delta in deltas:
            calls.add(delta)
            if delta.get("content"):
                yield str(delta["content"])
        reply.calls = calls.done()
    except httpx.HTTPError as exc:
        log.warning("realtime_local.llm.stream_broken", error=repr(exc))
    finally:
        response.close()


def _whole(body: dict[str, Any]) -> Decision:
    message = (body.get("choices") or [{}])[0].get("message") or {}
    calls = _Calls()
    calls.add(
        {"tool_calls": [{**c, "index": i} for i, c in enumerate(message.get("tool_calls") or [])]}
    )
    return Decision(text=(message.get("content") or "").strip(), calls=calls.done())
