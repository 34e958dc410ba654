"""The steps of an agent's turn, shown in order under its cell: an action the model proposes
(the code it wants to run, the cell it wants to add), the decision on it, and what each call
returned. Our chrome escapes every value; the model's code and the results show exactly, in
code blocks, never as Markdown or HTML.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .markdown import code_block, escape, html_bundle, inline_code, thumbnail

__all__ = ["decision_bundle", "ended_bundle", "proposal_bundle", "proposal_text", "results_bundle"]

_MUTED = "font-size:0.85em;opacity:0.75"
_BOX = (
    "border-left:3px solid var(--jp-brand-color1, #1976d2);padding:0.2em 0.6em;margin:0.4em 0;"
    "background:rgba(25,118,210,0.06)"
)
_WHAT = {
    "run_python": "wants to run this code in your kernel:",
    "insert_cell": "wants to add this cell below (not run):",
}
# Marks every font has (emoji show as boxes where no emoji font is installed).
_MARKS = {"approved": "✓", "declined": "–", "stopped": "■", "refused": "✗"}
_SHOWN = 6000


def proposal_text(name: str, arguments: Mapping[str, Any]) -> str:
    """The proposed action as plain text (terminals, and the bundle's text/plain)."""
    code = arguments.get("code") if name in _WHAT else None
    if isinstance(code, str):
        rule = "─" * 40
        return f"The model {_WHAT[name]}\n{rule}\n{code.rstrip()}\n{rule}"
    return f"The model wants to call {name}({_arguments(arguments)})"


def proposal_bundle(name: str, arguments: Mapping[str, Any]) -> dict[str, str]:
    """An action shown before it happens: the code exactly, or the call with its arguments."""
    code = arguments.get("code") if name in _WHAT else None
    if isinstance(code, str):
        body = f"<strong>{escape(name)}</strong> — the model {escape(_WHAT[name])}" + (
            code_block(code, "python")
        )
    else:
        body = "The model wants to call " + inline_code(f"{name}({_arguments(arguments)})")
    return html_bundle(
        f'<div class="nbchat-proposal" style="{_BOX}">{body}</div>',
        proposal_text(name, arguments),
    )


def decision_bundle(kind: str, text: str) -> dict[str, str]:
    """One line under a proposal: approved, declined (skipped), stopped or refused, and why."""
    mark = _MARKS.get(kind, "•")
    return html_bundle(
        f'<div class="nbchat-decision" style="{_MUTED}">{mark} {escape(text)}</div>',
        f"{mark} {text}",
    )


def results_bundle(results: list[Any], *, open_names: tuple[str, ...] = ()) -> dict[str, str]:
    """Each call of a round with what it returned: open for ``open_names`` (the code the model
    ran), collapsed for the rest; images as thumbnails."""
    parts: list[str] = []
    text: list[str] = []
    for result in results:
        mark = "✓" if result.ok else ("–" if result.declined else "✗")
        content = result.message().get("content", "")
        shown = content if len(content) <= _SHOWN else content[: _SHOWN - 1] + "…"
        args = _arguments(result.arguments) if isinstance(result.arguments, Mapping) else ""
        if result.name in _WHAT:
            args = "…"
        approval = getattr(result, "approval", "not asked")
        note = (
            "" if approval == "not asked" else f' <span style="{_MUTED}">{escape(approval)}</span>'
        )
        images = "".join(
            thumbnail(image.thumbnail, alt=f"image from {result.name}")
            for image in getattr(result.value, "images", None) or ()
            if getattr(image, "thumbnail", None)
        )
        opened = " open" if result.name in open_names else ""
        parts.append(
            f'<details class="nbchat-tool-result"{opened}><summary>{mark} '
            f"{inline_code(f'{result.name}({args})')}{note}</summary>"
            f"{code_block(shown)}{images}</details>"
        )
        text.append(f"{mark} {result.name}({args}) -> {shown}")
    return html_bundle("".join(parts), "\n".join(text))


def ended_bundle(reply: Any) -> dict[str, str]:
    """The end of a turn that stopped in a tool round (Stop, Ctrl-C, the round limit): its notes,
    the interruption and the footer; the round's text and calls are shown above already."""
    from .bundles import completion_bundle
    from .provenance import footer_parts

    cached = getattr(reply, "cached", False)
    return completion_bundle(
        reply.completion.model_copy(update={"choices": []}),
        time_to_first_token=None if cached else reply.time_to_first_token,
        elapsed=None if cached else reply.elapsed,
        interrupted=reply.interrupted,
        notes=reply.notes,
        counted_tokens=getattr(reply, "output_chunks", 0),
        footer_extra=footer_parts(reply),
    )


def _arguments(arguments: Any, limit: int = 160) -> str:
    if not isinstance(arguments, Mapping):
        return str(arguments)[:limit]
    text = ", ".join(
        f"{key}={json.dumps(value, ensure_ascii=False, default=repr)}"
        for key, value in arguments.items()
    )
    return text if len(text) <= limit else text[: limit - 1] + "…"
