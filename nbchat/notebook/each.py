"""``%%chat --each DF``, ``%%chat --compare A,B`` and ``%chat compare -m A -m B …``: the options
of any cell, then ``nbchat.map`` over the rows or ``nbchat.compare`` across the models.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from IPython.core.error import UsageError
from IPython.display import display

from .run import refuse_each_options
from .settings import Chat as ChatSettings

__all__ = ["compare_line", "dispatch", "run_compare", "run_each"]

# Options of a cell that mean nothing for a map over rows or a comparison, and why.
_NOT_HERE = {
    "tools": "--tools (each request is one reply; no tool loop runs)",
    "tool_choice": "--tool-choice",
    "confirm": "--confirm",
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
}


def dispatch(shell: Any, settings: ChatSettings, args: Any, prompt: str) -> Any:
    """A cell with ``--each`` or ``--compare``."""
    if args.each and args.compare:
        raise UsageError("Use --each or --compare, not both")
    if args.each:
        return run_each(shell, settings, args, prompt)
    return run_compare(shell, settings, args, prompt, _models(args.compare))


def compare_line(
    shell: Any,
    settings: ChatSettings,
    parser: Any,
    split: Callable[[str, Any], tuple[list[str], str]],
    tokens: list[str],
    rest: str,
) -> Any:
    """``%chat compare -m A -m B [options] prompt``: each ``-m`` adds a column."""
    after = rest.strip()[len("compare") :].strip()
    more, prompt = split(after, parser)
    models, others = _take_models([*tokens, *more])
    if not models:
        raise UsageError(
            "%chat compare needs models: %chat compare -m MODEL_A -m MODEL_B Your prompt"
        )
    return run_compare(shell, settings, parser.parse_args(others), prompt, models)


def _take_models(tokens: list[str]) -> tuple[list[str], list[str]]:
    """Every ``-m``/``--model`` value (argparse would keep only the last one), and the rest."""
    models: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token in ("-m", "--model"):
            if i + 1 >= len(tokens):
                raise UsageError(f"Option {token} needs a value")
            models.append(tokens[i + 1])
            i += 2
            continue
        if token.startswith("--model="):
            models.append(token.split("=", 1)[1])
        elif token.startswith("-m") and len(token) > 2 and not token.startswith("--"):
            models.append(token[2:])
        else:
            rest.append(token)
        i += 1
    return models, rest


def _models(text: str) -> list[str]:
    models = [name.strip() for name in text.split(",") if name.strip()]
    if not models:
        raise UsageError("--compare needs model names separated by commas: --compare A,B")
    return models


def _lookup(namespace: dict[str, Any], name: str, what: str) -> Any:
    if name not in namespace:
        raise UsageError(f"{what} {name!r} is not defined in the notebook")
    return namespace[name]


def _refuse(args: Any, what: str) -> None:
    for attribute, option in _NOT_HERE.items():
        if getattr(args, attribute, None):
            raise UsageError(f"{option} does not apply to {what}")
    if getattr(args, "session", "default") != "default":
        raise UsageError(f"--session does not apply to {what} (no conversation is used)")


def _client(settings: ChatSettings) -> Any:
    from ..conversation.sessions import client_for
    from ..protocol.exceptions import NbchatError

    try:
        return client_for(settings)
    except NbchatError as exc:
        # No endpoint configured and the local server cannot start: say how to fix it.
        raise UsageError(str(exc)) from None


def _common(
    shell: Any, settings: ChatSettings, args: Any
) -> tuple[dict[str, Any], Any, str | None]:
    """Request fields, schema and system prompt from the options and settings."""
    from .run import overrides_from

    namespace = shell.user_ns
    if args.json and args.schema:
        raise UsageError("Use --json or --schema, not both")
    fields = overrides_from(args, settings, namespace)
    if args.json:
        fields["response_format"] = {"type": "json_object"}
    schema = _lookup(namespace, args.schema, "Schema") if args.schema else None
    system = args.system if args.system is not None else (settings.system or None)
    return fields, schema, system


def _progress_mode(shell: Any, settings: ChatSettings) -> str:
    from .run import display_mode

    mode = display_mode(shell, settings)
    return {"live": "auto", "final": "final", "text": "text"}.get(mode, "auto")


def _fail(exc: Exception) -> Any:
    """Show an API error's card and fail the cell with one line."""
    from ..render.bundles import error_bundle
    from .run import ChatCellError

    display(error_bundle(exc), raw=True)
    first = str(exc).strip().splitlines()
    return ChatCellError(f"{type(exc).__name__}: {first[0] if first else ''}")


def _how_sent(args: Any) -> tuple[str, float | None, dict[str, Any]]:
    """``--via``, ``--poll-interval`` and ``--concurrency``, checked as ``nbchat.map`` checks
    them: ``(via, poll_interval, MapJob options)``."""
    from ..conversation.mapping import check_via
    from ..protocol.exceptions import RequestValidationError

    via = args.via if args.via is not None else "online"
    if args.poll_interval is not None and via != "batch":
        raise UsageError("--poll-interval goes with --via batch (the online map does not poll)")
    if args.concurrency is not None and via == "batch":
        raise UsageError("--concurrency is for the online map; a batch job sends every row at once")
    try:
        check_via(via, args.poll_interval)
    except RequestValidationError as exc:
        raise UsageError(_as_option(exc)) from None
    options = {} if args.concurrency is None else {"concurrency": args.concurrency}
    return via, args.poll_interval, options


def _as_option(exc: Any) -> str:
    """A map's message about one of its arguments, naming the cell's option instead."""
    text, field = str(exc), getattr(exc, "field", None) or ""
    if field in ("via", "poll_interval", "concurrency") and text.startswith(field):
        return "--" + field.replace("_", "-") + text[len(field) :]
    return text


def run_each(shell: Any, settings: ChatSettings, args: Any, prompt: str) -> Any:
    """``%%chat --each ROWS``: the cell is the template, sent once per row."""
    from ..conversation.mapjob import MapJob
    from ..conversation.mapping import run_blocking
    from ..protocol.exceptions import APIError, RequestValidationError
    from ..render.bundles import request_bundle

    _refuse(args, "--each")
    via, poll_interval, sending = _how_sent(args)
    namespace = shell.user_ns
    rows = _lookup(namespace, args.each, "Rows")
    text = prompt.strip("\r\n").rstrip()
    if not text.strip():
        raise UsageError(
            "The prompt is empty: the cell is the template sent for each row, e.g. "
            "'Classify this review: {text}'"
        )
    fields, schema, system = _common(shell, settings, args)
    client = _client(settings)
    try:
        job = MapJob(
            text,
            rows,
            model=fields.pop("model", None),
            system=system,
            schema=schema,
            client=client,
            fields=fields,
            namespace=namespace,
            interpolate=settings.interpolate and not args.no_interpolate,
            **sending,
        )
    except RequestValidationError as exc:
        raise UsageError(_as_option(exc)) from None

    if args.dry_run:
        if not len(job):
            print(f"{args.each} has no rows: nothing would be sent.")
            return None
        job.bind(client, job.model)
        try:
            prepared = job.first_request()
        except RequestValidationError as exc:
            raise UsageError(str(exc)) from None
        title = f"Dry run (not sent): the request for row 1 of {len(job):,}"
        display(request_bundle(prepared, title=title), raw=True)
        for note in prepared.notes:
            print(f"Note: {note}")
        if via == "batch":
            from ..conversation.batchjob import DEFAULT_POLL_INTERVAL

            every = DEFAULT_POLL_INTERVAL if poll_interval is None else poll_interval
            print(
                f"{len(job):,} rows would be sent as one Batch API job, its status looked at "
                f"every {every:g} s."
            )
        else:
            print(f"{len(job):,} rows would be sent, at most {job.concurrency} at a time.")
        if args.out:
            namespace[args.out] = prepared.body
        return None

    try:
        run = run_blocking(
            job, via=via, poll_interval=poll_interval, progress=_progress_mode(shell, settings)
        )
    except RequestValidationError as exc:
        raise UsageError(str(exc)) from None
    except APIError as exc:
        raise _fail(exc) from None
    result = job.assemble(run.outcomes, run.unfinished)
    if run.stop_reason is not None:
        # A notice, not a warning: a warning from here would show this module's source line.
        print(run.summary())
    if args.out:
        namespace[args.out] = result
        not_run = len(job) - run.done
        print(
            f"{len(job):,} rows: {run.done - run.errors:,} replies, {run.errors:,} errors"
            + (f", {not_run:,} not run" if not_run else "")
            + f"; the result is in {args.out}."
        )
        return None
    return result


def run_compare(
    shell: Any, settings: ChatSettings, args: Any, prompt: str, models: list[str]
) -> Any:
    """The same prompt to each of ``models`` at once, side by side."""
    from ..conversation.chat import Reply
    from ..conversation.compare import compare
    from ..convert.interpolate import InterpolationError, interpolate
    from ..protocol.exceptions import APIError, RequestValidationError
    from ..render.bundles import request_bundle

    _refuse(args, "compare")
    if args.each:
        raise UsageError("Use --each or --compare, not both")
    refuse_each_options(args, "compare (every model gets the prompt at once)")
    namespace = shell.user_ns
    text = prompt.strip("\r\n").rstrip()
    if settings.interpolate and not args.no_interpolate:
        try:
            text = interpolate(text, namespace)
        except InterpolationError as exc:
            raise UsageError(str(exc)) from None
    if not text.strip():
        raise UsageError("The prompt is empty: write it in the cell (%%chat) or after the models.")
    fields, schema, system = _common(shell, settings, args)
    # Each column names its own model.
    fields.pop("model", None)
    client = _client(settings)
    stream = settings.stream and not args.no_stream

    if args.dry_run:
        from ..conversation.chat import Chat

        for model in models:
            chat = Chat(model=model, system=system, client=client)
            try:
                prepared = chat.prepare(text, stream=stream, schema=schema, **fields)
            except (RequestValidationError, ValueError) as exc:
                raise UsageError(str(exc).splitlines()[0]) from None
            display(request_bundle(prepared, title=f"Dry run (not sent): {model}"), raw=True)
        return None

    from .run import display_mode

    mode = display_mode(shell, settings)
    try:
        replies = compare(
            text,
            models,
            system=system,
            client=client,
            stream=stream,
            display=mode,
            schema=schema,
            **fields,
        )
    except RequestValidationError as exc:
        raise UsageError(str(exc)) from None
    if args.out:
        namespace[args.out] = [r.value if isinstance(r, Reply) else r for r in replies]
    failed = [(m, r) for m, r in zip(models, replies, strict=True) if isinstance(r, Exception)]
    if failed:
        model, error = failed[0]
        if isinstance(error, APIError):
            raise _fail(error) from None
        first = str(error).strip().splitlines()
        from .run import ChatCellError

        raise ChatCellError(
            f"{len(failed)} of {len(models)} failed; {model}: {type(error).__name__}: "
            f"{first[0] if first else ''}"
        )
    return None
