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

Not streamed: a phone reply is one or two sentences, so the whole completion is awaited and
then spoken sentence by sentence. A failed request fails the response (``server_error``).
Memory: one request/response body at a time; the conversation is rebuilt per request.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import httpx
import orjson

from service.modelserver.engine.base import BrainRequest, Decision, item_text
from service.modelserver.script import FunctionCall

__all__ = ["LlmBrain", "LlmConfig", "chat_messages", "chat_tools", "llm_config"]


class LlmConfig:
    """Where the LLM is; ``from_env`` reads ``LLM_BASE_URL``/``LLM_API_KEY``/``LLM_MODEL``."""

    def __init__(self, base_url: str, api_key: str = "", model: str = "", timeout: float = 30.0):
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.model = model
        self.timeout = timeout

    def __repr__(self) -> str:  # never shows the key
        return f"LlmConfig(base_url={self.base_url!r}, model={self.model!r})"


def llm_config(settings: Any = None, env: Mapping[str, str] | None = None) -> LlmConfig | None:
    """The LLM settings from ``settings`` attributes (``llm_base_url``…) or the environment;
    None when no base URL is set (the built-in dialogue engine is used)."""
    env = os.environ if env is None else env

    def get(name: str) -> str:
        value = getattr(settings, name.lower(), None)
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        return str(value or env.get(name, "") or "")

    base = get("LLM_BASE_URL")
    if not base:
        return None
    return LlmConfig(base, get("LLM_API_KEY"), get("LLM_MODEL"))


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
        body: dict[str, Any] = {"messages": chat_messages(request)}
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
        response = self.client.post(url, json=self.body(request))
        response.raise_for_status()
        message = (response.json().get("choices") or [{}])[0].get("message") or {}
        calls = []
        for call in message.get("tool_calls") or []:
            function = call.get("function") or {}
            arguments = function.get("arguments")
            if not isinstance(arguments, str):  # some servers send an object
                arguments = orjson.dumps(arguments or {}).decode()
            calls.append(FunctionCall(str(function.get("name")), arguments, call.get("id")))
        return Decision(text=(message.get("content") or "").strip(), calls=tuple(calls))

    def close(self) -> None:
        self.client.close()
