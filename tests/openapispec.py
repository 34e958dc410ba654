"""The vendored OpenAPI description of the Chat Completions API (``tests/openapi/``), read as
test data: its schemas resolved, instances built from them, and the cases at each property's
boundaries. ``tests/test_openapi.py`` holds nbchat's protocol types to it.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

SPEC_FILE = Path(__file__).parent / "openapi" / "chat_completions.json"
INT64 = 2**63


@cache
def spec() -> dict[str, Any]:
    return json.loads(SPEC_FILE.read_text(encoding="utf-8"))


def schema(name: str) -> dict[str, Any]:
    return resolve({"$ref": f"#/components/schemas/{name}"})


def resolve(node: dict[str, Any]) -> dict[str, Any]:
    """``node`` with its ``$ref`` followed and its ``allOf`` merged into one object schema."""
    while "$ref" in node:
        _, _, section, name = node["$ref"].split("/", 3)
        rest = {k: v for k, v in node.items() if k != "$ref"}
        node = {**spec()["components"][section][name], **rest}
    if "allOf" in node:
        merged: dict[str, Any] = {"type": "object", "properties": {}, "required": []}
        for part in node["allOf"]:
            part = resolve(part)
            merged["properties"].update(part.get("properties", {}))
            merged["required"] += part.get("required", [])
        return merged
    return node


def branches(node: dict[str, Any]) -> list[dict[str, Any]]:
    """The alternatives of a oneOf/anyOf (null left out), or the node itself."""
    node = resolve(node)
    options = node.get("oneOf") or node.get("anyOf")
    if not options:
        return [node]
    found: list[dict[str, Any]] = []
    for option in options:
        option = resolve(option)
        if option.get("type") == "null":
            continue
        found += branches(option)
    return found


def nullable(node: dict[str, Any]) -> bool:
    node = resolve(node)
    options = node.get("oneOf") or node.get("anyOf") or []
    return bool(node.get("nullable")) or any(resolve(o).get("type") == "null" for o in options)


def free_text(node: dict[str, Any]) -> bool:
    """Whether any string is valid here (a listed enum beside a plain string, as model ids)."""
    return any(b.get("type") == "string" and "enum" not in b for b in branches(node))


# ---------------------------------------------------------------------------------------------
# Instances

#: Values the schema alone cannot give (free-form objects nbchat reads, formats).
SAMPLE_TEXT = {
    "url": "https://example.com/a.png",
    "file_data": base64.b64encode(b"%PDF-1.4 test").decode(),
    "data": base64.b64encode(b"RIFF....WAVEfmt ").decode(),
}


def sample(node: dict[str, Any], *, full: bool = True, name: str = "", pick: int = 0) -> Any:
    """A valid instance: every property when ``full`` (else the required ones), the ``pick``-th
    alternative of a oneOf/anyOf (wrapping round), the first value of an enum."""
    options = branches(node)
    node = options[pick % len(options)] if len(options) > 1 else resolve(options[0])
    if "enum" in node:
        return node["enum"][0]
    kind = node.get("type")
    if kind == "object" or "properties" in node:
        props = node.get("properties", {})
        keys = list(props) if full else list(node.get("required", []))
        value = {key: sample(props[key], full=full, name=key) for key in keys if key in props}
        extra = node.get("additionalProperties")
        if not props and isinstance(extra, dict):
            value = {"1": sample(extra, full=full, name=name)}
        return value
    if kind == "array":
        count = max(1, node.get("minItems", 1))
        return [sample(node.get("items", {}), full=full, name=name) for _ in range(count)]
    if kind == "string":
        return SAMPLE_TEXT.get(name, "x")
    if kind == "integer":
        return max(node.get("minimum", 1), 1) if "minimum" in node else 1
    if kind == "number":
        low, high = node.get("minimum", 0), node.get("maximum", 1)
        return (low + high) / 2
    if kind == "boolean":
        return True
    return {}


def every_branch(node: dict[str, Any], name: str = "") -> Iterator[Any]:
    """A full instance for each alternative at every level: every kind of message, part,
    tool call, annotation… appears in one of them."""
    count = max(1, _branch_count(node, set()))
    for pick in range(count):
        yield _sample_picking(node, pick, name)


def _branch_count(node: dict[str, Any], seen: set[int]) -> int:
    options = branches(node)
    node = resolve(options[0]) if len(options) == 1 else {}
    most = len(options) if len(options) > 1 else 1
    for option in options if len(options) > 1 else [node]:
        option = resolve(option)
        if id(option) in seen:
            continue
        children = list(option.get("properties", {}).values())
        if option.get("type") == "array" and "items" in option:
            children.append(option["items"])
        for child in children:
            most = max(most, _branch_count(child, seen | {id(option)}))
    return most


def _sample_picking(node: dict[str, Any], pick: int, name: str) -> Any:
    options = branches(node)
    node = options[pick % len(options)] if len(options) > 1 else resolve(options[0])
    if "enum" in node:
        return node["enum"][0]
    if node.get("type") == "object" or "properties" in node:
        props = node.get("properties", {})
        if not props and isinstance(node.get("additionalProperties"), dict):
            return {"1": _sample_picking(node["additionalProperties"], pick, name)}
        return {key: _sample_picking(child, pick, key) for key, child in props.items()}
    if node.get("type") == "array":
        return [_sample_picking(node.get("items", {}), pick, name)]
    return sample(node, name=name)


# ---------------------------------------------------------------------------------------------
# Cases at the boundaries of every request property


@dataclass
class Case:
    """One request to send: ``payload`` is valid (``field`` None) or names ``field``."""

    label: str
    payload: dict[str, Any]
    field: str | None
    #: A tag of one value (``type: "text"``) left out: nbchat may fill it in, sending this.
    filled: dict[str, Any] | None = None


Place = Callable[[Any], dict[str, Any]]
#: A bad value that no branch of the type accepts, by JSON type.
WRONG_TYPE = {
    "string": 5,
    "integer": "many",
    "number": "many",
    "boolean": "maybe",
    "object": "x",
    "array": "x",
}


def request_cases(context: Callable[[dict[str, Any]], dict[str, Any]]) -> Iterator[Case]:
    """Every request property present (each alternative, each enum value, its boundaries,
    nullable as null), absent, and past its boundaries; ``context`` adds to a payload what a
    rule across fields needs (top_logprobs needs logprobs…)."""
    root = schema("CreateChatCompletionRequest")
    base = {"model": "gpt-5", "messages": [{"role": "user", "content": "hi"}]}

    def place_top(value: Any) -> dict[str, Any]:
        return value

    yield from _object_cases(root, base, place_top, "", context)


def _object_cases(
    node: dict[str, Any],
    full: dict[str, Any],
    place: Place,
    path: str,
    context: Callable[[dict[str, Any]], dict[str, Any]],
) -> Iterator[Case]:
    props = node.get("properties", {})
    required = set(node.get("required", []))
    for key, child in props.items():
        where = f"{path}.{key}" if path else key
        rest = {k: v for k, v in full.items() if k != key}

        def put(value: Any, rest: dict[str, Any] = rest, key: str = key) -> dict[str, Any]:
            return place({**rest, key: value})

        if key in required:
            tag = resolve(child).get("enum") or []
            filled = context(place(full)) if len(tag) == 1 else None
            yield Case(f"{where} absent", context(place(rest)), where, filled)
        else:
            yield Case(f"{where} absent", context(place(rest)), None)
        yield from _value_cases(child, put, where, context, name=key)


def _value_cases(
    node: dict[str, Any],
    put: Place,
    where: str,
    context: Callable[[dict[str, Any]], dict[str, Any]],
    *,
    name: str,
) -> Iterator[Case]:
    options = branches(node)
    if nullable(node) and where.count(".") > 0:
        yield Case(f"{where} null", context(put(None)), None)
    if len(options) == 1 and not free_text(node):
        kind = options[0].get("type")
        if kind in WRONG_TYPE and "enum" not in options[0]:
            yield Case(f"{where} of the wrong type", context(put(WRONG_TYPE[kind])), where)
    for number, option in enumerate(options):
        label = f"{where}[{number}]" if len(options) > 1 else where
        yield from _option_cases(option, put, label, where, context, name, free_text(node))


def _option_cases(
    option: dict[str, Any],
    put: Place,
    label: str,
    where: str,
    context: Callable[[dict[str, Any]], dict[str, Any]],
    name: str,
    free: bool,
) -> Iterator[Case]:
    value = sample(option, name=name)
    yield Case(f"{label} present", context(put(value)), None)
    if "enum" in option:
        for item in option["enum"]:
            yield Case(f"{label} = {item!r}", context(put(item)), None)
        if not free:
            yield Case(f"{label} outside its values", context(put("not-a-value")), where)
        return
    kind = option.get("type")
    if kind in ("integer", "number"):
        yield from _number_cases(option, put, label, where, context)
    elif kind == "string" and "maxLength" in option:
        most = option["maxLength"]
        yield Case(f"{label} at its longest", context(put("x" * most)), None)
        yield Case(f"{label} too long", context(put("x" * (most + 1))), where)
    elif kind == "array":
        yield from _array_cases(option, put, label, where, context, name)
    elif kind == "object" or "properties" in option:
        full = sample(option, name=name)
        if isinstance(full, dict) and option.get("properties"):
            yield from _object_cases(option, full, put, where, context)


def _number_cases(
    option: dict[str, Any],
    put: Place,
    label: str,
    where: str,
    context: Callable[[dict[str, Any]], dict[str, Any]],
) -> Iterator[Case]:
    step = 1 if option.get("type") == "integer" else 0.01
    for bound, sign in (("minimum", -1), ("maximum", 1)):
        if bound not in option:
            continue
        edge = option[bound]
        if abs(edge) >= INT64 - 2**12:
            # YAML wrote int64's bounds as rounded floats: the real ones are these.
            edge = -INT64 if sign < 0 else INT64 - 1
        yield Case(f"{label} at its {bound}", context(put(edge)), None)
        yield Case(f"{label} past its {bound}", context(put(edge + sign * step)), where)


def _array_cases(
    option: dict[str, Any],
    put: Place,
    label: str,
    where: str,
    context: Callable[[dict[str, Any]], dict[str, Any]],
    name: str,
) -> Iterator[Case]:
    items = option.get("items", {})
    item = sample(items, name=name)
    fewest, most = option.get("minItems"), option.get("maxItems")
    if fewest:
        yield Case(f"{label} with {fewest} items", context(put([item] * fewest)), None)
        yield Case(f"{label} with {fewest - 1} items", context(put([item] * (fewest - 1))), where)
    if most:
        yield Case(f"{label} with {most} items", context(put([item] * most)), None)
        yield Case(f"{label} with {most + 1} items", context(put([item] * (most + 1))), where)

    def put_item(value: Any) -> dict[str, Any]:
        return put([value])

    yield from _value_cases(items, put_item, f"{where}.0", context, name=name)


# ---------------------------------------------------------------------------------------------
# Streaming a reply the way the API streams it


def stream_of(completion: dict[str, Any], *, piece: int = 3) -> list[dict[str, Any]]:
    """The chunks the API streams for ``completion``: a role first, text, refusal, transcript,
    tool arguments and custom inputs in pieces, a call's id, type and name with its first
    piece, base64 audio in pieces that are each valid base64, annotations whole near the end,
    the finish reason last, usage in a final chunk without choices, and ``obfuscation`` padding
    on every chunk."""
    head = {key: completion[key] for key in ("id", "created", "model") if key in completion}
    for key in ("system_fingerprint", "service_tier"):
        if key in completion:
            head[key] = completion[key]
    head["object"] = "chat.completion.chunk"
    chunks: list[dict[str, Any]] = []

    def emit(index: int, delta: dict[str, Any], **choice: Any) -> None:
        padding = "x" * (len(chunks) % 7 + 1)
        choices = [{"index": index, "delta": delta, **choice}]
        chunks.append({**head, "choices": choices, "obfuscation": padding})

    def pieces(text: str) -> list[str]:
        return [text[i : i + piece] for i in range(0, len(text), piece)] or [""]

    for choice in completion.get("choices", []):
        index = choice["index"]
        message = copy.deepcopy(choice["message"])
        emit(index, {"role": message.pop("role", "assistant")})
        for field in ("content", "refusal"):
            text = message.pop(field, None)
            if text is None:
                emit(index, {field: None})
            else:
                for part in pieces(text):
                    emit(index, {field: part})
        audio = message.pop("audio", None)
        if audio is not None:
            emit(index, {"audio": {"id": audio["id"], "expires_at": audio["expires_at"]}})
            raw = base64.b64decode(audio["data"])
            for start in range(0, len(raw), 2):
                emit(index, {"audio": {"data": base64.b64encode(raw[start : start + 2]).decode()}})
            for part in pieces(audio["transcript"]):
                emit(index, {"audio": {"transcript": part}})
        for number, call in enumerate(message.pop("tool_calls", None) or []):
            kind = call["type"]
            body = call[kind]
            text_field = "arguments" if kind == "function" else "input"
            parts = pieces(body.get(text_field, ""))
            first = {"index": number, "id": call["id"], "type": kind}
            first[kind] = {"name": body["name"], text_field: parts[0]}
            emit(index, {"tool_calls": [first]})
            for part in parts[1:]:
                emit(index, {"tool_calls": [{"index": number, kind: {text_field: part}}]})
        function_call = message.pop("function_call", None)
        if function_call is not None:
            parts = pieces(function_call["arguments"])
            emit(index, {"function_call": {"name": function_call["name"], "arguments": ""}})
            for part in parts:
                emit(index, {"function_call": {"arguments": part}})
        annotations = message.pop("annotations", None)
        if annotations is not None:
            emit(index, {"annotations": annotations})
        if message:
            emit(index, message)  # anything else the message holds, whole
        last = {"finish_reason": choice.get("finish_reason")}
        if "logprobs" in choice:
            last["logprobs"] = choice["logprobs"]
        emit(index, {}, **last)
    tail = {**head, "choices": [], "obfuscation": "x"}
    for key in ("usage", "moderation"):
        if key in completion:
            tail[key] = completion[key]
    chunks.append(tail)
    return chunks
