"""Tools the model may call: JSON Schema from type hints, validated arguments, timeouts.

A tool is a plain ``async def`` with type hints and a docstring, decorated with
``@tool(timeout=3.0, cancellable=True, sensitive={"zip_code"})``.

* The model-facing description is the docstring's first paragraph (later paragraphs are for
  developers); a parameter's is ``Annotated[..., Field(description=...)]``.
* A parameter named ``ctx`` or annotated ``ToolContext`` receives the per-call context and is
  not part of the schema.
* The schema is pydantic's, made plain: no titles, ``$defs`` inlined, ``additionalProperties:
  false``. Arguments are validated by the same pydantic model (numbers are accepted for string
  fields: models often send ``4217`` for ``"4217"``).

Running: ``ToolRun(spec, arguments, ctx)`` starts the tool in its own task; ``await
run.wait()`` gives a ``ToolOutcome`` and never raises for the tool's faults: every failure
becomes an ``output`` the model can speak about. ``run.cancel()`` (cancellable tools, e.g. on
barge-in) ends the tool and ``wait()`` returns status ``cancelled``. Cancelling the task that
*awaits* ``wait()`` cancels the tool too and ``CancelledError`` propagates there as usual.
``run_tool`` is ``ToolRun(...).wait()``. Idempotency (a call_id runs once) is the worker's
job; ``CallIdLedger`` is the bounded memory it uses for that.
"""

from __future__ import annotations

import asyncio
import inspect
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, get_type_hints

import orjson
import structlog
from pydantic import BaseModel, ConfigDict, ValidationError, create_model
from redis.asyncio import Redis

from service.agent.schema import docstring_summary, plain_schema
from service.telephony.numbers import TransferPolicy

__all__ = [
    "REDACTED",
    "CallControl",
    "CallIdLedger",
    "ToolContext",
    "ToolOutcome",
    "ToolRegistry",
    "ToolRun",
    "ToolSpec",
    "redact",
    "redact_arguments",
    "run_tool",
    "tool",
]

log = structlog.get_logger(__name__)

REDACTED = "[redacted]"
# OpenAI's rule for function names.
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

Status = Literal["ok", "invalid_arguments", "unknown_tool", "error", "timeout", "cancelled"]

# What the model is told for each failure: short, speakable, no internals.
_MESSAGES: dict[str, str] = {
    "invalid_arguments": "I didn't get all the details needed for that. Ask the caller again.",
    "unknown_tool": "That isn't something I can do on this call.",
    "error": "I couldn't look that up right now.",
    "timeout": "That took too long, so I couldn't look it up right now.",
    "cancelled": "That was stopped because the caller started speaking.",
}


class CallControl(Protocol):
    """What a tool may do to the call itself; the call worker implements it."""

    async def hang_up(self, reason: str) -> None:
        """End the call (after whatever is playing has been heard)."""
        ...

    async def transfer(self, target: str) -> None:
        """Move the call to a validated target; raises ``CarrierError`` if the carrier can't."""
        ...


@dataclass
class ToolContext:
    """What a tool may use; built per call by the call factory. ``state`` is the per-call
    scratch dict (shared by every tool call of that call; e.g. verified orders). ``call`` is
    set by the worker that runs the call."""

    call_sid: str
    redis: Redis | None
    key_prefix: str = ""
    state: dict[str, Any] = field(default_factory=dict)
    transfer_policy: TransferPolicy = field(default_factory=TransferPolicy)
    call: CallControl | None = None

    def control(self) -> CallControl:
        if self.call is None:
            raise RuntimeError("this tool needs a live call, and the context has none")
        return self.call


@dataclass(frozen=True)
class ToolSpec:
    """One tool: what the model sees (name, description, parameters) and how to run it."""

    name: str
    description: str
    parameters: dict[str, Any]  # JSON Schema of the arguments object
    func: Callable[..., Awaitable[Any]]
    timeout_s: float
    cancellable: bool
    sensitive: frozenset[str]  # argument or result field names redacted in the audit
    args_model: type[BaseModel] | None = None  # validates arguments; None: no arguments
    ctx_param: str | None = None  # the parameter that receives the ToolContext

    def openai_tool(self) -> dict[str, Any]:
        """The entry for OpenAI Realtime GA ``session.tools`` (no other keys)."""
        return {
            "type": "function",
            "name": self.name,
            "description": self.description,
            "parameters": self.parameters,
        }


@dataclass(frozen=True)
class ToolOutcome:
    """What happened. ``output`` is the ``function_call_output.output`` string (JSON);
    ``result`` the tool's return value as plain JSON data when ``ok``; ``error`` a short
    reason for the audit (never sent to the model)."""

    status: Status
    output: str
    result: Any = None
    error: str = ""
    duration_ms: float = 0.0


def tool(
    func: Callable[..., Awaitable[Any]] | None = None,
    *,
    name: str | None = None,
    timeout: float = 5.0,
    cancellable: bool = False,
    sensitive: Iterable[str] = (),
) -> Any:
    """Decorator (``@tool`` or ``@tool(...)``): returns the function unchanged, with its
    ``ToolSpec`` as ``func.spec``. ``timeout`` is in seconds; ``cancellable`` says the worker
    may abandon it (read-only tools); ``sensitive`` names fields redacted in the audit."""

    def wrap(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        fn.spec = build_spec(  # type: ignore[attr-defined]
            fn, name=name, timeout=timeout, cancellable=cancellable, sensitive=sensitive
        )
        return fn

    return wrap(func) if func is not None else wrap


def build_spec(
    fn: Callable[..., Awaitable[Any]],
    *,
    name: str | None = None,
    timeout: float = 5.0,
    cancellable: bool = False,
    sensitive: Iterable[str] = (),
) -> ToolSpec:
    """Derive a ``ToolSpec`` from ``fn``'s signature and docstring (see the module doc)."""
    if not inspect.iscoroutinefunction(fn):
        raise TypeError(f"tool {fn.__qualname__} must be an async function")
    tool_name = name or fn.__name__
    if not _NAME.match(tool_name):
        raise ValueError(f"tool name {tool_name!r} must match {_NAME.pattern}")
    if timeout <= 0:
        raise ValueError(f"tool {tool_name}: timeout must be positive")
    summary = docstring_summary(inspect.getdoc(fn) or "")
    if not summary:
        raise ValueError(f"tool {tool_name} needs a docstring (the model reads it)")
    hints = get_type_hints(fn, include_extras=True)
    fields: dict[str, Any] = {}
    ctx_param: str | None = None
    for param in inspect.signature(fn).parameters.values():
        hint = hints.get(param.name, Any)
        if param.name == "ctx" or hint is ToolContext:
            ctx_param = param.name
            continue
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise TypeError(f"tool {tool_name}: *args/**kwargs cannot be described to a model")
        default = ... if param.default is param.empty else param.default
        fields[param.name] = (hint, default)
    model: type[BaseModel] | None = None
    schema: dict[str, Any] = {"type": "object", "properties": {}, "additionalProperties": False}
    if fields:
        model = create_model(  # type: ignore[call-overload]
            f"{tool_name}_arguments",
            __config__=ConfigDict(extra="forbid", coerce_numbers_to_str=True),
            **fields,
        )
        schema = plain_schema(model.model_json_schema())
    return ToolSpec(
        name=tool_name,
        description=summary,
        parameters=schema,
        func=fn,
        timeout_s=float(timeout),
        cancellable=cancellable,
        sensitive=frozenset(sensitive),
        args_model=model,
        ctx_param=ctx_param,
    )


class ToolRegistry:
    """Tools by name, in the order added. Bounded by the code that registers them."""

    def __init__(self, tools: Iterable[ToolSpec | Callable[..., Any]] = ()) -> None:
        self._specs: dict[str, ToolSpec] = {}
        for item in tools:
            self.add(item)

    def add(self, spec_or_fn: ToolSpec | Callable[..., Any]) -> ToolSpec:
        """Register a ``ToolSpec`` or a ``@tool`` function (a bare async function is derived
        with the defaults). A second tool with the same name is a ``ValueError``."""
        if isinstance(spec_or_fn, ToolSpec):
            spec = spec_or_fn
        else:
            spec = getattr(spec_or_fn, "spec", None) or build_spec(spec_or_fn)
        if spec.name in self._specs:
            raise ValueError(f"tool {spec.name!r} is already registered")
        self._specs[spec.name] = spec
        return spec

    def extend(self, other: ToolRegistry) -> ToolRegistry:
        """Add every tool of ``other``; returns self."""
        for spec in other._specs.values():
            self.add(spec)
        return self

    def get(self, name: str) -> ToolSpec | None:
        return self._specs.get(name)

    def names(self) -> list[str]:
        return list(self._specs)

    def subset(self, names: Iterable[str]) -> ToolRegistry:
        """The named tools (a profile's enabled tools), in the order given."""
        wanted = list(dict.fromkeys(names))
        unknown = [n for n in wanted if n not in self._specs]
        if unknown:
            raise ValueError(
                f"unknown tools: {', '.join(unknown)} (known: {', '.join(self._specs) or '-'})"
            )
        return ToolRegistry(self._specs[n] for n in wanted)

    def openai_tools(self) -> list[dict[str, Any]]:
        """``session.tools`` for OpenAI Realtime GA."""
        return [spec.openai_tool() for spec in self._specs.values()]

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __len__(self) -> int:
        return len(self._specs)


def _failure(status: Status, error: str, started: float, **extra: Any) -> ToolOutcome:
    body = {"error": status, "message": _MESSAGES[status], **extra}
    return ToolOutcome(
        status=status,
        output=orjson.dumps(body).decode(),
        error=error,
        duration_ms=(time.perf_counter() - started) * 1000,
    )


def _summarise(exc: ValidationError) -> str:
    # Field and reason only: the input values may be sensitive (a ZIP code) and must not
    # reach logs or the audit through the error text. At most 5 problems.
    parts = []
    for err in exc.errors(include_input=False, include_url=False)[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "arguments"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


async def _execute(spec: ToolSpec | None, arguments: str, ctx: ToolContext) -> ToolOutcome:
    started = time.perf_counter()
    if spec is None:
        return _failure("unknown_tool", "unknown tool", started)
    try:
        raw = orjson.loads(arguments) if arguments.strip() else {}
    except orjson.JSONDecodeError:
        return _failure("invalid_arguments", "arguments are not JSON", started)
    if not isinstance(raw, dict):
        return _failure("invalid_arguments", "arguments are not a JSON object", started)
    kwargs: dict[str, Any] = {}
    if spec.args_model is not None:
        try:
            parsed = spec.args_model.model_validate(raw)
        except ValidationError as exc:
            details = _summarise(exc)
            return _failure("invalid_arguments", details, started, details=details)
        kwargs = {name: getattr(parsed, name) for name in type(parsed).model_fields}
    elif raw:
        details = f"unexpected arguments: {', '.join(raw)}"[:300]
        return _failure("invalid_arguments", details, started, details=details)
    if spec.ctx_param:
        kwargs[spec.ctx_param] = ctx
    try:
        async with asyncio.timeout(spec.timeout_s):
            value = await spec.func(**kwargs)
    except TimeoutError:
        log.warning("tool.timeout", tool=spec.name, timeout_s=spec.timeout_s)
        return _failure("timeout", f"no result after {spec.timeout_s:g}s", started)
    except asyncio.CancelledError:
        # Only ToolRun.cancel() (or wait()'s clean-up) cancels this task: report it.
        return _failure("cancelled", "cancelled", started)
    except Exception as exc:
        log.warning("tool.failed", tool=spec.name, exc_info=True)
        return _failure("error", f"{type(exc).__name__}: {exc}"[:300], started)
    try:
        output = orjson.dumps(value, default=_to_jsonable).decode()
    except TypeError as exc:
        log.warning("tool.bad_result", tool=spec.name, result_type=type(value).__name__)
        return _failure("error", f"result not JSON-serialisable: {exc}"[:300], started)
    return ToolOutcome(
        status="ok",
        output=output,
        result=orjson.loads(output),  # plain JSON data, so redact() sees every field
        duration_ms=(time.perf_counter() - started) * 1000,
    )


def _to_jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


class ToolRun:
    """One running tool call, in its own task (``.task``), started on construction.

    ``cancel()`` stops a cancellable tool (``force=True`` stops any); ``wait()`` then returns
    status ``cancelled``. If the task awaiting ``wait()`` is itself cancelled, the tool is
    cancelled as well and ``CancelledError`` propagates (nothing is left running).
    """

    def __init__(self, spec: ToolSpec | None, arguments: str, ctx: ToolContext) -> None:
        self.spec = spec
        self._started = time.perf_counter()
        self.task: asyncio.Task[ToolOutcome] = asyncio.create_task(
            _execute(spec, arguments, ctx), name=f"tool:{spec.name if spec else '?'}"
        )

    def cancel(self, *, force: bool = False) -> bool:
        """Cancel the tool; False when it is done already or not cancellable (without force)."""
        if self.task.done() or not (force or (self.spec and self.spec.cancellable)):
            return False
        return self.task.cancel()

    async def wait(self) -> ToolOutcome:
        # shield: cancelling the awaiting task must raise *there*. Awaiting the tool task
        # directly would forward that cancel into it, and since the tool task turns a cancel
        # into a "cancelled" outcome, the awaiting task would lose its own cancellation.
        try:
            return await asyncio.shield(self.task)
        except asyncio.CancelledError:
            me = asyncio.current_task()
            if self.task.cancelled() and (me is None or me.cancelling() == 0):
                # cancel() landed before the tool's first step: not our own cancellation.
                return _failure("cancelled", "cancelled before start", self._started)
            self.task.cancel()
            raise


async def run_tool(spec: ToolSpec | None, arguments: str, ctx: ToolContext) -> ToolOutcome:
    """Run one tool call to its outcome (``spec`` None: the model named an unknown tool)."""
    return await ToolRun(spec, arguments, ctx).wait()


def redact(value: Any, sensitive: frozenset[str]) -> Any:
    """A deep copy of ``value`` with the values of ``sensitive`` keys replaced by
    ``"[redacted]"`` at any depth (dicts inside lists too)."""
    if isinstance(value, dict):
        return {k: REDACTED if k in sensitive else redact(v, sensitive) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(item, sensitive) for item in value]
    return value


def redact_arguments(arguments: str, sensitive: frozenset[str]) -> str:
    """The model's raw arguments string, redacted for the audit. Unparseable text is not
    stored at all (it could hold a sensitive value we cannot locate)."""
    try:
        parsed = orjson.loads(arguments) if arguments.strip() else {}
    except orjson.JSONDecodeError:
        return f"[unparseable: {len(arguments)} chars]"
    return orjson.dumps(redact(parsed, sensitive)).decode()


class CallIdLedger:
    """The call_ids seen on one call, so a duplicated event runs its tool once.

    Memory: at most ``maxlen`` ids (default 1024, ~100 KB); past that the oldest is
    forgotten, which only matters for a duplicate arriving 1024 tool calls late.
    """

    def __init__(self, maxlen: int = 1024) -> None:
        if maxlen < 1:
            raise ValueError("maxlen must be at least 1")
        self.maxlen = maxlen
        self._seen: dict[str, None] = {}  # insertion-ordered: the oldest goes first

    def first_time(self, call_id: str) -> bool:
        """True (and remember it) the first time ``call_id`` is seen; False after."""
        if call_id in self._seen:
            return False
        self._seen[call_id] = None
        if len(self._seen) > self.maxlen:
            del self._seen[next(iter(self._seen))]
        return True

    def __contains__(self, call_id: object) -> bool:
        return call_id in self._seen

    def __len__(self) -> int:
        return len(self._seen)
