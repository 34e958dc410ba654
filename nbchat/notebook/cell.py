"""A ``%%chat`` cell as one request value, whatever its form: a prompt (fix and explain are
prompts with the error added), ``--each`` rows or a ``--compare`` across models.

``cell_request()`` reads the options, the settings and the notebook's variables once; the dry
run, the send, the map and the comparison all take the ``CellRequest`` it returns. A mistake
is a one-line UsageError raised here, before anything is sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError

from ..conversation.prompt import Prompt
from ..protocol.exceptions import first_line
from .settings import Chat as ChatSettings

if TYPE_CHECKING:
    from argparse import Namespace

    from IPython.core.interactiveshell import InteractiveShell

    from ..transport.client import AsyncClient, Client

__all__ = [
    "EACH_OPTIONS",
    "FORMS",
    "CellRequest",
    "as_option",
    "cell_request",
    "lookup",
    "map_job",
    "overrides_from",
]

#: What a cell can be: one prompt to the conversation, a template over rows, or a prompt to
#: several models side by side.
FORMS = ("prompt", "each", "compare")

#: Options of a map over rows only (``--each``), and how the cell names them.
EACH_OPTIONS = {"concurrency": "--concurrency", "via": "--via", "poll_interval": "--poll-interval"}

# Options of a cell that mean nothing for a map over rows or a comparison, and why.
_NOT_FOR_MANY = {
    "tools": "--tools (each request is one reply; no tool loop runs)",
    "tool_choice": "--tool-choice",
    "confirm": "--confirm",
    "mcp": "--mcp (each request is one reply; no tool loop runs)",
    "agent": "--agent (each request is one reply; no tool loop runs)",
    "yes": "--yes",
    "no_parallel_tools": "--no-parallel-tools",
    "image": "--image",
    "data": "--data",
    "audio": "--audio",
    "file": "--file",
    "speak": "--speak (the rows' replies are text)",
    "allowed_tools": "--allowed-tools",
    "raw": "--raw",
    "logprobs": "--logprobs",
    "new": "--new (no conversation is used)",
    "var": "--var",
    "cells": "--cells",
    "code": "--code",
}


@dataclass
class CellRequest:
    """What one cell asks for, read once from its options, settings and variables.

    ``prompt`` is the ``Prompt`` the conversation (or each column, or each row) is sent:
    content, request fields, tools, schema, stream and cache choices. ``text`` is the prompt as
    written after interpolation (for ``each``, the template). ``context`` is what ``--var``,
    ``--cells`` and ``%chat fix`` added; ``attachments`` the ``--image``/``--data`` parts.
    """

    form: str
    prompt: Prompt
    text: str
    args: Namespace
    attachments: Any = None
    context: Any = None
    #: The system prompt of a map or a comparison (a prompt cell's is the conversation's).
    system: str | None = None
    #: ``--compare``: the models, one column each.
    models: list[str] = field(default_factory=list)
    #: ``--each``: the rows, the name they were given by, and how to send them.
    rows: Any = None
    rows_name: str | None = None
    via: str = "online"
    poll_interval: float | None = None
    concurrency: int | None = None
    #: Whether ``{expressions}`` are filled in (each row's, for ``--each``).
    interpolate: bool = True

    @property
    def content(self) -> Any:
        return self.prompt.content

    @property
    def fields(self) -> dict[str, Any]:
        return self.prompt.request_fields


def lookup(namespace: dict[str, Any], name: str, what: str) -> Any:
    """A notebook variable a cell names, or a one-line UsageError."""
    if name not in namespace:
        raise UsageError(f"{what} {name!r} is not defined in the notebook")
    return namespace[name]


def overrides_from(
    args: Namespace, settings: ChatSettings, namespace: dict[str, Any]
) -> dict[str, Any]:
    """Request fields from the settings, then the cell's options on top."""
    fields: dict[str, Any] = dict(settings.request)
    if settings.model:
        fields["model"] = settings.model
    if settings.temperature is not None:
        fields["temperature"] = settings.temperature
    if settings.max_tokens is not None:
        fields["max_tokens"] = settings.max_tokens
    cell = {
        "model": args.model,
        "temperature": args.temperature,
        "top_p": args.top_p,
        "max_tokens": args.max_tokens,
        "max_completion_tokens": args.max_completion_tokens,
        "reasoning_effort": args.reasoning_effort,
        "n": args.n,
        "stop": args.stop,
        "presence_penalty": args.presence_penalty,
        "frequency_penalty": args.frequency_penalty,
        "logit_bias": dict(args.logit_bias) if args.logit_bias else None,
        "seed": args.seed,
        "user": args.user,
        "store": args.store,
    }
    fields.update({k: v for k, v in cell.items() if v is not None})
    if args.stop and len(args.stop) == 1:
        fields["stop"] = args.stop[0]
    if args.logprobs is not None:
        fields["logprobs"] = True
        fields["top_logprobs"] = args.logprobs
    if args.tool_choice:
        fields["tool_choice"] = args.tool_choice
    if args.no_parallel_tools:
        fields["parallel_tool_calls"] = False
    # The newer parts of the API (audio, predictions, web search, tiers…): mapped in apiopts.
    from .apiopts import api_fields

    fields.update(api_fields(args, namespace, stream=settings.stream and not args.no_stream))
    return fields


def cell_request(
    shell: InteractiveShell,
    settings: ChatSettings,
    args: Namespace,
    text: str,
    *,
    models: list[str] | None = None,
) -> CellRequest:
    """The request a cell asks for; ``models`` given (or ``--compare``) makes it a comparison."""
    if args.each and (args.compare or models):
        raise UsageError("Use --each or --compare, not both")
    if args.compare and not models:
        models = _models(args.compare)
    form = "each" if args.each else "compare" if models else "prompt"
    namespace = shell.user_ns
    _refuse_options(args, form)
    # The cell's trailing newline and blank edges are not part of the prompt.
    text = text.strip("\r\n").rstrip()
    if args.json and args.schema:
        raise UsageError("Use --json or --schema, not both")
    fields = overrides_from(args, settings, namespace)
    schema = lookup(namespace, args.schema, "Schema") if args.schema else None
    options: dict[str, Any] = {
        "schema": schema,
        "json": bool(args.json),
        "stream": settings.stream and not args.no_stream,
        "cache": args.cache,
    }
    if form == "each":
        return _each(shell, settings, args, text, fields, options)
    if settings.interpolate and not args.no_interpolate:
        text = _interpolate(text, namespace)
    system = args.system if args.system is not None else (settings.system or None)
    if form == "compare":
        if not text.strip():
            raise UsageError(
                "The prompt is empty: write it in the cell (%%chat) or after the models."
            )
        fields.pop("model", None)  # each column names its own
        prompt = Prompt.of(text, **options, **fields)
        return CellRequest(form, prompt, text, args, system=system, models=list(models or ()))
    from .context import add_context

    text, context = add_context(text, args, namespace, settings)
    attached = (
        args.image or args.data or getattr(args, "audio", None) or getattr(args, "file", None)
    )
    if not text.strip() and not attached:
        raise UsageError("The prompt is empty: write it in the cell (%%chat) or after %chat.")
    content, attachments = _content(text, args, namespace, context.images)
    tools = [lookup(namespace, name, "Tool") for name in args.tools or ()]
    if getattr(args, "mcp", None):
        from .mcpcmd import cell_tools

        tools += cell_tools(settings, args.mcp)
    if getattr(args, "agent", False):
        from .agent import agent_tools

        tools += agent_tools()
    confirm = True if args.confirm or settings.confirm_tools else None
    prompt = Prompt.of(
        content,
        tools=tools or None,
        confirm=confirm,
        max_rounds=settings.max_tool_rounds,
        **options,
        **fields,
    )
    return CellRequest(
        form, prompt, text, args, attachments=attachments, context=context, system=system
    )


def _each(
    shell: InteractiveShell,
    settings: ChatSettings,
    args: Namespace,
    text: str,
    fields: dict[str, Any],
    options: dict[str, Any],
) -> CellRequest:
    """``--each ROWS``: the cell is the template, filled in for each row by the map."""
    if not text.strip():
        raise UsageError(
            "The prompt is empty: the cell is the template sent for each row, e.g. "
            "'Classify this review: {text}'"
        )
    via = args.via if args.via is not None else "online"
    if args.poll_interval is not None and via != "batch":
        raise UsageError("--poll-interval goes with --via batch (the online map does not poll)")
    if args.concurrency is not None and via == "batch":
        raise UsageError("--concurrency is for the online map; a batch job sends every row at once")
    from ..conversation.mapping import check_via
    from ..protocol.exceptions import RequestValidationError

    try:
        check_via(via, args.poll_interval)
    except RequestValidationError as exc:
        raise UsageError(as_option(exc)) from None
    if options.pop("json"):
        fields["response_format"] = {"type": "json_object"}
    system = args.system if args.system is not None else (settings.system or None)
    rows = _rows(shell, args.each)
    return CellRequest(
        "each",
        Prompt.of(text, **options, **fields),
        text,
        args,
        system=system,
        rows=rows,
        rows_name=args.each,
        via=via,
        poll_interval=args.poll_interval,
        concurrency=args.concurrency,
        interpolate=settings.interpolate and not args.no_interpolate,
    )


def _rows(shell: InteractiveShell, text: str) -> Any:
    """``--each``'s rows: a variable, or an expression over the notebook's (``df.iloc[2:]``)."""
    if text.isidentifier():
        return lookup(shell.user_ns, text, "Rows")
    try:
        code = compile(text, "<--each>", "eval")
    except SyntaxError:
        raise UsageError(f"--each takes a variable or an expression, not {text!r}") from None
    try:
        return eval(code, shell.user_global_ns, shell.user_ns)
    except Exception as exc:
        raise UsageError(f"--each {text}: {type(exc).__name__}: {first_line(exc)}") from None


def as_option(exc: Any) -> str:
    """A map's message about one of its arguments, naming the cell's option instead."""
    text, name = str(exc), getattr(exc, "field", None) or ""
    if name in ("via", "poll_interval", "concurrency") and text.startswith(name):
        return "--" + name.replace("_", "-") + text[len(name) :]
    return text


def _refuse_options(args: Namespace, form: str) -> None:
    """A UsageError for an option that means nothing in this form of cell."""
    what = {"each": "--each", "compare": "compare", "prompt": "a single prompt"}[form]
    if form != "each":
        for name, option in {**EACH_OPTIONS, "resume": "--resume"}.items():
            if getattr(args, name, None) is not None:
                raise UsageError(f"{option} goes with --each DF; it does not apply to {what}")
    if form == "prompt":
        return
    for attribute, option in _NOT_FOR_MANY.items():
        if getattr(args, attribute, None):
            raise UsageError(f"{option} does not apply to {what}")
    if getattr(args, "session", "default") != "default":
        raise UsageError(f"--session does not apply to {what} (no conversation is used)")


def _models(text: str) -> list[str]:
    models = [name.strip() for name in text.split(",") if name.strip()]
    if not models:
        raise UsageError("--compare needs model names separated by commas: --compare A,B")
    return models


def _interpolate(text: str, namespace: dict[str, Any]) -> str:
    from ..convert.interpolate import InterpolationError, interpolate

    try:
        return interpolate(text, namespace)
    except InterpolationError as exc:
        raise UsageError(str(exc)) from None


def _content(
    text: str, args: Namespace, namespace: dict[str, Any], extra_images: list[Any] | None = None
) -> tuple[Any, Any]:
    """The user message content and its attachments, from --image and --data variables."""
    from ..convert.content import build_content as build
    from .apiopts import api_attachments

    images = [lookup(namespace, name, "Image") for name in args.image or ()]
    images += extra_images or []
    data = [lookup(namespace, name, "Data") for name in args.data or ()]
    more = api_attachments(args, namespace)  # --audio, --file
    try:
        return build(
            text, images=images, data=data, names=args.data or (), detail=args.detail, **more
        )
    except ValueError as exc:
        raise UsageError(first_line(exc)) from None


def map_job(request: CellRequest, client: Client | AsyncClient, namespace: dict[str, Any]) -> Any:
    """The checked ``MapJob`` of an ``--each`` cell (a mistake is a one-line UsageError)."""
    from ..conversation.mapjob import MapJob
    from ..protocol.exceptions import RequestValidationError

    prompt = request.prompt
    fields = dict(prompt.fields)
    sending: dict[str, Any] = {}
    if request.concurrency is not None:
        sending["concurrency"] = request.concurrency
    args = request.args
    try:
        return MapJob(
            request.text,
            request.rows,
            model=prompt.model,
            system=request.system,
            schema=prompt.schema,
            client=client,
            fields=fields,
            namespace=namespace,
            interpolate=request.interpolate,
            cache=prompt.cache,
            resume=bool(getattr(args, "resume", False)),
            **sending,
        )
    except RequestValidationError as exc:
        raise UsageError(as_option(exc)) from None
