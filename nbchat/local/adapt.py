"""How requests are fitted to the local server, and what it lacks: the findings table below.

``adapt_request()`` rewrites a request body for it; ``explain_broken_stream()`` tells why one of
its streams broke; ``profile()`` is the ServerProfile that uses both.

What the server (llama-cpp-python 0.3.36, SmolLM2-135M-Instruct Q4_1, the model's own chat
template) does with each part of the protocol, found by sending it real requests:

=============================  ==================================================================
Request                        Local server behaviour (and what ``adapt_request`` does)
=============================  ==================================================================
plain chat, ``stream``         works; the model's template adds a default system prompt
``model``                      any id is accepted; the response echoes the id sent (the model
                               file's path when none is sent); ``/v1/models`` lists the alias
``max_tokens``                 works; past the context it is cut to what fits (no error)
``max_completion_tokens``      ignored by the server → sent as ``max_tokens``
``n`` > 1                      ignored, one choice comes back → error before sending
``stream_options``             ignored: no usage chunk in streams → dropped, with a note
``logprobs``/``top_logprobs``  work, streamed too; ``logprobs`` alone returns none → sent with
                               ``top_logprobs: 0`` (each token then lists itself as its top 1)
``response_format``            ``json_object`` works (grammar); ``json_object`` + ``schema``
                               enforces the schema; ``json_schema`` is a 500 → sent as
                               ``json_object`` + ``schema``, with a note
``tool_choice`` naming a tool  works, streamed too: arguments follow the parameters by grammar;
                               a name not in ``tools`` is a 500 → error before sending
``tool_choice: "required"``    silently answers in text → with one tool, forced to that tool;
                               with several, error before sending
``tool_choice: "auto"``/unset  the template never shows tools, the model answers in text → note
``tool_choice`` allowed_tools  a 500 → the tools cut to those allowed, and the choice sent as
                               ``auto`` (mode auto) or as ``required`` would be (mode required)
custom tools (``type: custom``) a 500 → error before sending (it takes function tools only)
parallel tool calls            at most one call per reply; ``parallel_tool_calls`` is dropped
tool without ``parameters``    a 500 → sent with an empty object schema
``functions``/``function_call`` work, answered as ``tool_calls`` (the newer shape)
assistant turn with no text    a 500 (content must be a string) → the calls are written as text
assistant turn by ``audio.id`` a 500 → sent without the reference (its text only)
``function`` role (deprecated) a 500 → error before sending (use tools)
content as a list of parts     a 500 → text parts joined; image/audio/file parts are an error
``developer`` role             a 500 → sent as ``system``
``tool`` messages              shown to the model as a ``tool`` turn of its template
``modalities``/``audio``       ignored, a text reply comes back → error before sending
``web_search_options``         ignored, no search and no citations → error before sending
``prediction``                 ignored (no speed-up) → dropped, with a note
``reasoning_effort``,          ignored → dropped, with a note
``verbosity``, ``service_tier``,
``prompt_cache_key``,
``prompt_cache_options``,
``prompt_cache_retention``,
``safety_identifier``,
``moderation``
``stream_options``             (``include_obfuscation`` too) dropped: see above
stored completions             ``GET /chat/completions`` 405, ``…/{id}`` 404 ``{"detail": …}``:
                               ``%chat stored`` says the server keeps none
prompt longer than ``n_ctx``   400 ``context_length_exceeded`` (OpenAI's shape); streamed, the
                               server sends 200 and drops the connection: see
                               ``explain_broken_stream``
=============================  ==================================================================

``chatml-function-calling`` was tried as chat format and rejected: it never renders ``tool``
messages (the model cannot see results), under ``auto`` it calls a tool for every prompt (a
haiku request called ``get_weather``), ignores ``max_tokens`` and fails on ``required``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..protocol.exceptions import APIStatusError, RequestValidationError
from ..transport.profiles import (
    ServerProfile,
    UnsupportedFeatureError,
    configured_profile,
    copy_body,
)

if TYPE_CHECKING:
    from ..transport.client import Client

__all__ = ["FEATURES", "adapt_request", "explain_broken_stream", "profile"]

#: What the local server supports, measured with the requests of the table above.
FEATURES: dict[str, bool | None] = {
    "stream_usage": False,
    "json_schema": False,
    "json_object": True,
    "logprobs": True,
    "tools": True,
    "vision": False,
    "n": False,
    "developer_role": False,
    "audio_input": False,
    "audio_output": False,
    "files": False,
    "custom_tools": False,
    "predictions": False,
    "web_search": False,
    "stored_completions": False,
}


def profile(model: str | None, context_window: int | None = None) -> ServerProfile:
    """The profile of nbchat's own local server serving ``model``: adapted by this module."""
    # Configured, not guessed: nothing a reply says changes what nbchat measured here.
    return configured_profile(
        "llama-cpp-python",
        default_model=model,
        local=True,
        adapter=adapt_request,
        explain_broken_stream=explain_broken_stream,
        features=dict(FEATURES),
        context_window=context_window,
        source="nbchat/local/adapt.py (requests sent to llama-cpp-python 0.3.36)",
    )


_TEXT_ONLY = "the local model reads text only"


def _unsupported(
    field: str, what: str, instead: str = "", *, feature: str = ""
) -> UnsupportedFeatureError:
    message = f"Invalid request: {field}: {what} is unsupported by the local server"
    return UnsupportedFeatureError(
        message + (f" ({instead})" if instead else ""), field=field, feature=feature
    )


def adapt_request(body: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Fit a chat completion request body to the local server: ``(new body, notes)``.

    Equivalent rewrites are made quietly; a rewrite or a loss the user should know of comes
    with a note; what cannot be served faithfully raises a RequestValidationError (one line).
    The table in this module's docstring lists every case. ``body`` is not modified.
    """
    out = copy_body(body)
    notes: list[str] = []

    n = out.pop("n", None)
    if n is not None and n != 1:
        raise _unsupported("n", f"n={n}", "it returns one choice; send separate requests")
    if set(out.get("modalities") or ()) - {"text"} or out.get("audio"):
        raise _unsupported("modalities", "audio output", _TEXT_ONLY, feature="audio_output")
    if out.get("web_search_options") is not None:
        raise _unsupported("web_search_options", "web search", feature="web_search")
    if any(tool.get("type") == "custom" for tool in out.get("tools") or ()):
        raise _unsupported(
            "tools", "a custom tool", "it takes function tools only", feature="custom_tools"
        )

    _adapt_max_tokens(out)
    if out.pop("stream_options", None) and out.get("stream"):
        notes.append("The local server reports no token usage in streams.")
    if out.get("logprobs") and out.get("top_logprobs") is None:
        out["top_logprobs"] = 0
    if out.pop("prediction", None) is not None:
        notes.append("prediction is ignored by the local server; it was left out.")
    for field in _IGNORED:
        if out.pop(field, None) is not None:
            notes.append(f"{field} is ignored by the local server.")
    out.pop("parallel_tool_calls", None)

    notes += _adapt_response_format(out)
    notes += _adapt_tools(out)
    if "messages" in out:
        out["messages"] = [_adapt_message(i, m) for i, m in enumerate(out["messages"])]
    return out, notes


# Fields the server ignores: dropped, with a note, so that nobody believes they had an effect.
_IGNORED = (
    "reasoning_effort",
    "verbosity",
    "service_tier",
    "prompt_cache_key",
    "prompt_cache_options",
    "prompt_cache_retention",
    "safety_identifier",
    "moderation",
)


def _adapt_max_tokens(out: dict[str, Any]) -> None:
    limit = out.pop("max_completion_tokens", None)
    if limit is not None:
        current = out.get("max_tokens")
        out["max_tokens"] = limit if current is None else min(current, limit)


def _adapt_response_format(out: dict[str, Any]) -> list[str]:
    fmt = out.get("response_format")
    if not isinstance(fmt, Mapping) or fmt.get("type") != "json_schema":
        return []
    schema = (fmt.get("json_schema") or {}).get("schema")
    if schema is not None:
        schema = _grammar_friendly(schema)
    out["response_format"] = (
        {"type": "json_object", "schema": schema} if schema is not None else {"type": "json_object"}
    )
    return ["response_format json_schema was sent as json_object with the schema."]


def _grammar_friendly(schema: Any) -> Any:
    """The schema with ``type`` dropped beside ``enum`` where ``type`` is a list.

    The server's grammar ignores ``enum`` when ``type`` is a list (as strict schemas write an
    optional enum: ``["string", "null"]``), so the model could send any string; the enum alone
    (which lists null too) says the same and is enforced.
    """
    if isinstance(schema, list):
        return [_grammar_friendly(item) for item in schema]
    if not isinstance(schema, Mapping):
        return schema
    node = {key: _grammar_friendly(value) for key, value in schema.items()}
    if "enum" in node and isinstance(node.get("type"), list):
        del node["type"]
    return node


def _adapt_tools(out: dict[str, Any]) -> list[str]:
    tools = out.get("tools") or []
    if not tools:
        return []
    names = []
    for tool in tools:
        function = tool.get("function") or {}
        names.append(function.get("name"))
        if function.get("parameters") is None:
            function["parameters"] = {"type": "object", "properties": {}}
        else:
            function["parameters"] = _grammar_friendly(function["parameters"])
    choice = out.get("tool_choice")
    if isinstance(choice, Mapping) and choice.get("type") == "allowed_tools":
        # The server takes no allowed_tools: the same as offering only those tools.
        allowed = choice.get("allowed_tools") or {}
        keep = {
            (entry.get("function") or {}).get("name")
            for entry in allowed.get("tools") or ()
            if isinstance(entry, Mapping)
        }
        out["tools"] = [t for t in tools if (t.get("function") or {}).get("name") in keep]
        names = [name for name in names if name in keep]
        choice = out["tool_choice"] = "required" if allowed.get("mode") == "required" else "auto"
    if isinstance(choice, Mapping):
        name = (choice.get("function") or {}).get("name")
        if name not in names:
            raise RequestValidationError(
                f"Invalid request: tool_choice: no tool named {name!r} in tools",
                field="tool_choice",
            )
        return []
    if choice == "required":
        if len(names) > 1:
            raise _unsupported(
                "tool_choice", "'required' with several tools", "name one function instead"
            )
        out["tool_choice"] = {"type": "function", "function": {"name": names[0]}}
        return []
    if choice == "none":
        return []
    if any(message.get("role") == "tool" for message in out.get("messages") or ()):
        # After tool results the model is meant to answer in text: nothing to warn about.
        return []
    return [
        "The local model calls a tool only when tool_choice names it; "
        "with tool_choice 'auto' it answers in text."
    ]


def _adapt_message(index: int, message: Mapping[str, Any]) -> dict[str, Any]:
    message = dict(message)
    if message.get("role") == "developer":
        message["role"] = "system"
    if message.get("role") == "function":
        raise _unsupported(
            f"messages.{index}", "the function role (deprecated)", "answer tool calls instead"
        )
    # A spoken turn refers to audio the local server never made: only its text can go.
    message.pop("audio", None)
    content = message.get("content")
    if isinstance(content, list):
        message["content"] = _join_text(index, content)
    if message.get("role") == "assistant" and not message.get("content"):
        message["content"] = _calls_as_text(message.get("tool_calls")) or (
            message.get("refusal") or ""
        )
    elif message.get("content") is None:
        message["content"] = ""
    return message


# The profile's feature each kind of content part needs.
_PART_FEATURES = {"image_url": "vision", "input_audio": "audio_input", "file": "files"}


def _join_text(index: int, parts: list[Any]) -> str:
    texts = []
    for part in parts:
        # A part without a type is text, as in nbchat's own request model.
        kind = part.get("type", "text") if isinstance(part, Mapping) else type(part).__name__
        if kind != "text":
            feature = _PART_FEATURES.get(kind, "")
            raise _unsupported(
                f"messages.{index}.content", f"{kind} input", _TEXT_ONLY, feature=feature
            )
        texts.append(part.get("text", ""))
    return "\n".join(texts)


def _calls_as_text(calls: Any) -> str:
    # The model's template shows only text: without this the model would not see what it called.
    lines = []
    for call in calls or []:
        function = call.get("function") or {}
        lines.append(f"{function.get('name', '')}({function.get('arguments', '')})")
    return "\n".join(lines)


def explain_broken_stream(client: Client, body: Mapping[str, Any]) -> APIStatusError | None:
    """Why a stream from the local server broke before its first chunk, or None if unknown.

    The server drops a stream whose prompt does not fit the context without saying why; the
    same request unstreamed gets the real error, which is returned.
    """
    probe = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
    # The user's own max_tokens keeps the server's message about their request; the probe
    # only generates if the prompt fits after all.
    probe.setdefault("max_tokens", probe.pop("max_completion_tokens", 1))
    try:
        client.create(**probe)
    except APIStatusError as exc:
        # The pooled connection was the one the server dropped: its reconnect is not a retry
        # of this error, so the card should not count it as one.
        exc.retries = 0
        return exc
    return None
