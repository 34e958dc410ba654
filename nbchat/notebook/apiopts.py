"""The cell options of the newer parts of the API, and what each becomes: request fields
(``api_fields``) and attachments (``api_attachments``). The one place that maps them:

=========================  ==================================================================
option                     request
=========================  ==================================================================
``--audio VAR``            an ``input_audio`` part (``--sample-rate N`` for arrays of samples)
``--file PATH_OR_VAR``     a ``file`` part (a path, a variable holding one, bytes, a file id)
``--speak VOICE``          ``modalities: ["text", "audio"]``, ``audio: {voice, format}``
                           (``wav``; ``pcm16`` when streamed, which the player wraps as WAV)
``--predict VAR``          ``prediction: {"type": "content", "content": text}``
``--web-search [SIZE]``    ``web_search_options`` (``search_context_size`` low/medium/high)
``--allowed-tools F,G``    ``tool_choice: {"type": "allowed_tools", …}`` (with ``--tools``)
``--service-tier``,        the fields of the same name
``--verbosity``,
``--prompt-cache-key``,
``--safety-identifier``
``--metadata K=V``         ``metadata`` (with ``--store``), and the filter of ``%chat stored``
=========================  ==================================================================
"""

from __future__ import annotations

import inspect
import os
from typing import Any

from IPython.core.error import UsageError

# Light on purpose: the magic imports this module when the extension loads.
from ..protocol.values import REASONING_EFFORTS, SERVICE_TIERS, VERBOSITIES, VOICES

__all__ = [
    "REASONING_EFFORTS",
    "SERVICE_TIERS",
    "VERBOSITIES",
    "VOICES",
    "api_attachments",
    "api_fields",
    "metadata_pair",
    "predicted_text",
]


def metadata_pair(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` of ``--metadata``."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(text)
    return key.strip(), value


def api_fields(args: Any, namespace: dict[str, Any], *, stream: bool) -> dict[str, Any]:
    """The request fields the cell's options of the newer API ask for."""
    fields: dict[str, Any] = {}
    for name in ("service_tier", "verbosity", "prompt_cache_key", "safety_identifier"):
        value = getattr(args, name, None)
        if value is not None:
            fields[name] = value
    if getattr(args, "metadata", None):
        fields["metadata"] = dict(args.metadata)
    size = getattr(args, "web_search", None)
    if size is not None:
        fields["web_search_options"] = {"search_context_size": size} if size else {}
    voice = getattr(args, "speak", None)
    if voice is not None:
        # A streamed spoken reply comes as raw pcm16 (the player wraps it as WAV); whole, as WAV.
        fields["modalities"] = ["text", "audio"]
        fields["audio"] = {"voice": voice, "format": "pcm16" if stream else "wav"}
    if getattr(args, "predict", None):
        text = predicted_text(_lookup(namespace, args.predict, "--predict"), args.predict)
        fields["prediction"] = {"type": "content", "content": text}
    if getattr(args, "allowed_tools", None):
        fields["allowed_tools"] = list(args.allowed_tools)
    return fields


def predicted_text(value: Any, name: str = "") -> str:
    """What ``--predict`` sends: a string as it is, a function's or class's source."""
    if isinstance(value, str):
        return value
    if inspect.isfunction(value) or inspect.isclass(value) or inspect.ismethod(value):
        try:
            return inspect.getsource(value)
        except (OSError, TypeError):
            raise UsageError(f"--predict {name}: its source cannot be found") from None
    raise UsageError(
        f"--predict {name}: the prediction is text (a str, or a function or class whose "
        f"source is sent), not a {type(value).__name__}"
    )


def api_attachments(args: Any, namespace: dict[str, Any]) -> dict[str, Any]:
    """``build_content``'s recordings and files for ``--audio`` and ``--file``, each checked
    here so that a bad one is named by its option."""
    from ..convert.audio import AudioError, audio_part
    from ..convert.files import FileInputError, file_part
    from ..protocol.exceptions import first_line

    rate = getattr(args, "sample_rate", None)
    if rate is not None and not getattr(args, "audio", None):
        raise UsageError("--sample-rate goes with --audio VAR (an array of samples)")
    recordings = []
    for name in getattr(args, "audio", None) or ():
        try:
            recordings.append(
                audio_part(_lookup(namespace, name, "--audio", path=True), sample_rate=rate)
            )
        except AudioError as exc:
            raise UsageError(f"--audio {name}: {first_line(exc)}") from None
    files = []
    for name in getattr(args, "file", None) or ():
        try:
            files.append(file_part(_lookup(namespace, name, "--file", path=True)))
        except FileInputError as exc:
            raise UsageError(f"--file {name}: {first_line(exc)}") from None
    return {"recordings": recordings, "files": files}


def _lookup(namespace: dict[str, Any], name: str, option: str, *, path: bool = False) -> Any:
    if name in namespace:
        return namespace[name]
    if path and (os.path.exists(name) or name.startswith("file-")):
        return name
    what = "a variable of the notebook nor a file" if path else "a variable of the notebook"
    raise UsageError(f"{option} {name}: not {what}")
