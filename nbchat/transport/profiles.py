"""What nbchat knows about the server behind a client: its kind, its model, what it supports.

A ``ServerProfile`` is chosen by configuration (``Client(server="vllm")``) or detected, and it
is the one place where a request is fitted to a server (``adapt``) and where facts learned by
trying (usage in streams, json_schema, logprobs, tools, images) are remembered for the endpoint.

Each kind's differences from the protocol reference, and where they come from:

================  =================================================================================
kind              differences nbchat applies (source)
================  =================================================================================
openai            none: the reference itself (platform.openai.com/docs/api-reference/chat)
azure             URL ``{resource}/openai/deployments/{deployment}/chat/completions?api-version=…``,
                  the key in an ``api-key`` header; the deployment names the model
                  (learn.microsoft.com/azure/ai-foundry/openai/reference)
llama-cpp-python  ``json_schema`` is a 500: sent as ``json_object`` + ``schema``; ``n`` > 1 and
                  images unsupported; no usage in streams; ``developer`` role unknown → ``system``
                  (requests sent to llama-cpp-python 0.3.36: the table in nbchat/local/adapt.py;
                  nbchat's own local server adds more, see there)
llama-server      ``response_format`` ``json_object`` takes a ``schema``; ``json_schema`` works;
                  ``n`` > 1 unsupported; ``/v1/models`` says ``owned_by: llamacpp``
                  (github.com/ggml-org/llama.cpp, tools/server/README.md)
vllm              everything of the reference incl. ``stream_options``, ``json_schema`` (guided
                  decoding) and logprobs; tools need ``--enable-auto-tool-choice``; ``/v1/models``
                  says ``owned_by: vllm`` and gives ``max_model_len``
                  (docs.vllm.ai, serving/openai_compatible_server)
ollama            fields it does not take are dropped: ``logit_bias``, ``user``, ``n``;
                  ``stream_options.include_usage`` works; port 11434
                  (docs.ollama.com/api/openai-compatibility)
lmstudio          ``response_format`` ``json_object`` is a 400 ("must be 'json_schema' or 'text'"):
                  sent as ``json_schema`` with an any-object schema; port 1234
                  (lmstudio.ai/docs/api/structured-output; lmstudio-bug-tracker issue 189)
openrouter        the reference; usage in streams (openrouter.ai/docs/api-reference)
generic           nothing assumed: what fails is learned once and remembered
================  =================================================================================
"""

from __future__ import annotations

import copy
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .client import Client

__all__ = [
    "FEATURES",
    "KINDS",
    "Adapter",
    "ServerProfile",
    "UnsupportedFeatureError",
    "configured_profile",
    "copy_body",
    "detect_profile",
    "kind_from_models",
    "profile_for",
]

from .kinds import KINDS

#: What a profile may know a server supports (True), lacks (False) or not know yet (None).
FEATURES = (
    "stream_usage",  # a usage chunk at the end of a stream when stream_options asks for it
    "json_schema",  # response_format {"type": "json_schema"}
    "json_object",  # response_format {"type": "json_object"}
    "logprobs",
    "tools",
    "vision",  # image_url content parts
    "n",  # several choices per request
    "developer_role",  # messages with role "developer"
    "audio_input",  # input_audio content parts
    "audio_output",  # spoken replies: modalities ["audio"] with audio
    "files",  # file content parts
    "custom_tools",  # tools of type custom (free text or a grammar)
    "predictions",  # prediction (predicted outputs)
    "web_search",  # web_search_options (and url citations)
    "stored_completions",  # GET/POST/DELETE /chat/completions[/{id}[/messages]]
)

#: What each feature is called in a refusal, and the request field it is about.
_FEATURE_WORDS = {
    "audio_input": ("messages", "audio input", "send text, or use a model that hears"),
    "files": ("messages", "file input", "send the text of the file instead"),
    "audio_output": ("modalities", "spoken replies (audio output)", "leave out --speak"),
    "custom_tools": ("tools", "custom tools", "make it a function tool"),
    "web_search": ("web_search_options", "web search", "leave out --web-search"),
}

from ..protocol.exceptions import RequestValidationError  # noqa: E402


class UnsupportedFeatureError(RequestValidationError):
    """The server is known not to take a part of the request (audio, files, custom tools…);
    nothing was sent. ``feature`` names the part (one of FEATURES, when it is one) and
    ``body`` is the request as it was built, before the server's adaptations: a dry run shows
    it."""

    def __init__(self, message: str, *, field: str | None = None, feature: str = "") -> None:
        super().__init__(message, field=field)
        self.feature = feature
        self.body: dict[str, Any] | None = None


#: ``(body) -> (new body, notes)``; raises RequestValidationError for what cannot be served.
Adapter = Callable[[Mapping[str, Any]], tuple[dict[str, Any], list[str]]]
#: ``(client, body) -> the real error behind a stream the server dropped, or None``.
Explainer = Callable[["Client", Mapping[str, Any]], Exception | None]

# The schema a json_object request means, for servers that only take json_schema.
_ANY_OBJECT = {"name": "json_object", "schema": {"type": "object"}}


@dataclass
class ServerProfile:
    """One server's differences from the protocol reference, and what was learned about it.

    ``features`` holds what is known in advance; ``learn()`` records what a request found out
    (shared by every conversation that talks to this endpoint, under a lock).
    """

    kind: str = "generic"
    default_model: str | None = None
    context_window: int | None = None
    features: dict[str, bool | None] = field(default_factory=dict)
    #: Request fields the server rejects or ignores: dropped before sending, with a note.
    drops: tuple[str, ...] = ()
    #: A server on this machine (no price; a note says when it answered for another model).
    local: bool = False
    adapter: Adapter | None = None
    explain_broken_stream: Explainer | None = None
    #: How the key is sent: ``"bearer"`` (Authorization: Bearer KEY) or ``"api-key"`` (Azure).
    auth: str = "bearer"
    #: Query parameters every request carries (Azure's ``api-version``).
    query: dict[str, str] = field(default_factory=dict)
    #: True when the kind was configured, not guessed: detection then leaves it alone.
    configured: bool = False
    #: Where the differences written here come from.
    source: str = ""
    _learned: dict[str, bool] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Unknown server kind {self.kind!r}; one of: {', '.join(KINDS)}")
        if self.auth not in ("bearer", "api-key"):
            raise ValueError(f"auth must be 'bearer' or 'api-key', not {self.auth!r}")

    def __repr__(self) -> str:
        model = f", default_model={self.default_model!r}" if self.default_model else ""
        return f"ServerProfile(kind={self.kind!r}{model})"

    # -- what it supports ---------------------------------------------------------------------

    def supports(self, feature: str) -> bool | None:
        """True, False, or None when neither the profile nor a request has told yet."""
        if feature not in FEATURES:
            raise ValueError(f"Unknown feature {feature!r}; one of: {', '.join(FEATURES)}")
        with self._lock:
            if feature in self._learned:
                return self._learned[feature]
        return self.features.get(feature)

    def learn(self, feature: str, value: bool) -> None:
        """Remember what a request found out about the server, for every later request."""
        if feature not in FEATURES:
            raise ValueError(f"Unknown feature {feature!r}; one of: {', '.join(FEATURES)}")
        with self._lock:
            self._learned[feature] = value

    @property
    def learned(self) -> dict[str, bool]:
        with self._lock:
            return dict(self._learned)

    def remember_model(self, model: str) -> None:
        with self._lock:
            self.default_model = model

    def auth_headers(self, api_key: str | None) -> dict[str, str]:
        if not api_key:
            return {}
        if self.auth == "api-key":
            return {"api-key": api_key}
        return {"Authorization": f"Bearer {api_key}"}

    # -- fitting a request --------------------------------------------------------------------

    def adapt(self, body: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """Fit a request body to this server: ``(new body, notes)``; ``body`` is not changed.

        What the server lacks is rewritten to an equivalent where there is one (with a note),
        left out where it only loses something (with a note), and refused before sending
        (RequestValidationError) where the reply could not be what was asked for. A profile
        with an ``adapter`` leaves all of that to it, after dropping ``drops``.
        """
        try:
            return self._adapt(body)
        except UnsupportedFeatureError as exc:
            exc.body = copy_body(body)  # what a dry run shows: the request as built
            raise

    def _adapt(self, body: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
        out = copy_body(body)
        notes: list[str] = []
        for name in self.drops:
            if out.pop(name, None) is not None:
                notes.append(f"{name} is not supported by {self.kind}; it was left out.")
        if self.adapter is not None:
            # A server-specific adapter (nbchat's local server) knows better than the rules by
            # feature below, which would pre-empt its own rewrites (its grammar-friendly schema).
            out, more = self.adapter(out)
            return out, notes + [note for note in more if note not in notes]
        self._check_refusals(out)
        if out.get("prediction") is not None and self.supports("predictions") is False:
            # A prediction only makes a reply faster: without it the reply is the same.
            del out["prediction"]
            notes.append(
                f"{self.kind} takes no predicted outputs{self._learned_from('predictions')}; "
                "prediction was left out (the reply is the same, without its speed-up)."
            )
        if out.get("stream_options") and self.supports("stream_usage") is False:
            del out["stream_options"]
            notes.append(f"{self.kind} reports no token usage in streams; they are counted.")
        if out.get("logprobs") and self.supports("logprobs") is False:
            out.pop("logprobs")
            out.pop("top_logprobs", None)
            notes.append(f"{self.kind} returns no logprobs (learned from an earlier request).")
        notes += self._adapt_response_format(out)
        if self.supports("developer_role") is False:
            _rename_role(out, "developer", "system")
        elif self.kind in ("openai", "azure") and _REASONING_MODEL.match(str(out.get("model"))):
            # OpenAI's reasoning models take instructions as developer messages.
            _rename_role(out, "system", "developer")
        return out, notes

    def _check_refusals(self, out: dict[str, Any]) -> None:
        n = out.get("n")
        if n is not None and n != 1 and self.supports("n") is False:
            raise _unsupported(self.kind, "n", f"n={n}", "send separate requests")
        if out.get("tools") and self.supports("tools") is False:
            raise _unsupported(self.kind, "tools", "tool calling")
        if self.supports("vision") is False and _has_images(out.get("messages") or ()):
            raise _unsupported(self.kind, "messages", "image input", "use a model that can see")
        for feature in uses(out):
            if feature in _FEATURE_WORDS and self.supports(feature) is False:
                field, what, instead = _FEATURE_WORDS[feature]
                why = self._learned_from(feature)
                raise _unsupported(self.kind, field, what + why, instead, feature=feature)

    def _learned_from(self, feature: str) -> str:
        """`` (learned from an earlier refusal)`` when a request taught it, not the profile."""
        return " (learned from an earlier refusal)" if feature in self.learned else ""

    def _adapt_response_format(self, out: dict[str, Any]) -> list[str]:
        fmt = out.get("response_format")
        if not isinstance(fmt, Mapping):
            return []
        kind = fmt.get("type")
        if kind == "json_schema" and self.supports("json_schema") is False:
            if self.supports("json_object") is False:
                raise _unsupported(self.kind, "response_format", "structured output")
            schema = (fmt.get("json_schema") or {}).get("schema")
            out["response_format"] = (
                {"type": "json_object", "schema": schema}
                if schema is not None and self.kind in ("llama-cpp-python", "llama-server")
                else {"type": "json_object"}
            )
            return [
                f"{self.kind} takes no json_schema format: sent as json_object; the reply is "
                "still validated against the schema."
            ]
        if kind == "json_object" and self.supports("json_object") is False:
            if self.supports("json_schema") is False:
                raise _unsupported(self.kind, "response_format", "JSON mode")
            out["response_format"] = {"type": "json_schema", "json_schema": dict(_ANY_OBJECT)}
            return [f"{self.kind} takes no json_object format: sent as json_schema (any object)."]
        return []

    # -- learning from a refusal ---------------------------------------------------------------

    def fallback(self, error: Any, body: Mapping[str, Any]) -> str | None:
        """After a 400 that says the server lacks a feature the body uses: learn it and return
        a note when the request can be sent again without it (``adapt`` then leaves it out);
        None when the error is about something else or nothing can stand in for the feature."""
        param = (getattr(error, "param", None) or "").lower()
        message = (getattr(error, "message", None) or str(error)).lower()

        def about(*words: str) -> bool:
            return any(word in param or word in message for word in words)

        if body.get("stream_options") and about("stream_options", "include_usage"):
            self.learn("stream_usage", False)
            return "The server refused stream_options, so streamed tokens are counted."
        fmt = body.get("response_format")
        if isinstance(fmt, Mapping) and about("response_format", "json_schema", "json_object"):
            feature = "json_schema" if fmt.get("type") == "json_schema" else "json_object"
            other = "json_object" if feature == "json_schema" else "json_schema"
            if self.supports(feature) is False or self.supports(other) is False:
                return None
            self.learn(feature, False)
            return (
                f"The server refused response_format {feature}; sent again as {other} "
                "(the reply is still validated)."
            )
        if body.get("logprobs") and about("logprobs", "top_logprobs"):
            self.learn("logprobs", False)
            return "The server refused logprobs; the reply comes without them."
        used = uses(body)
        if "predictions" in used and about("prediction"):
            self.learn("predictions", False)
            return "The server refused prediction; sent again without it (the reply is the same)."
        for feature, words in _REFUSAL_WORDS.items():
            if feature in used and self.supports(feature) is not True and about(*words):
                # Nothing stands in for it: the error stands, and the next request is refused
                # before it is sent, saying why.
                self.learn(feature, False)
                return None
        if body.get("tools") and about("tools", "tool_choice", "function"):
            self.learn("tools", False)
        elif _has_images(body.get("messages") or ()) and about("image", "vision", "multimodal"):
            self.learn("vision", False)
        return None

    # -- detection ----------------------------------------------------------------------------

    def refine(self, kind: str) -> None:
        """Become a profile of ``kind`` when this one is a guess (``generic``, not configured);
        what was learned and the default model are kept."""
        if kind not in KINDS or self.configured or self.kind != "generic" or kind == "generic":
            return
        known = profile_for(kind)
        with self._lock:
            self.kind = kind
            self.features = {**known.features, **self.features}
            self.drops = known.drops
            self.source = known.source

    def observe_models(self, payload: Any) -> None:
        """Learn from a ``GET /models`` body: the server's kind and the context window."""
        kind = kind_from_models(payload)
        if kind is not None:
            self.refine(kind)
        if self.context_window is None:
            self.context_window = context_from_models(payload, self.default_model)

    def observe(self, extra: Mapping[str, Any] | None) -> None:
        """Learn the server's kind from the fields a reply carries beyond the reference."""
        if not extra or self.kind != "generic":
            return
        if "timings" in extra:
            self.refine("llama-server")
        elif "kv_transfer_params" in extra or "prompt_logprobs" in extra:
            self.refine("vllm")
        elif extra.get("system_fingerprint") == "fp_ollama":
            self.refine("ollama")
        elif "stats" in extra:
            self.refine("lmstudio")


# What a server's refusal says when it is about a feature (its param or its message).
_REFUSAL_WORDS = {
    "audio_input": ("input_audio", "audio input"),
    "files": ("file_data", "file_id", "'file'", "file input", "content.file"),
    "audio_output": ("modalities", "audio output", "audio.voice", "'audio'"),
    "custom_tools": ("custom",),
    "web_search": ("web_search",),
}


def uses(body: Mapping[str, Any]) -> set[str]:
    """The features of FEATURES a request body uses, of those a server may lack."""
    used: set[str] = set()
    for message in body.get("messages") or ():
        content = message.get("content") if isinstance(message, Mapping) else None
        for part in content if isinstance(content, list) else ():
            kind = part.get("type") if isinstance(part, Mapping) else None
            if kind == "input_audio":
                used.add("audio_input")
            elif kind == "file":
                used.add("files")
    if "audio" in (body.get("modalities") or ()) or body.get("audio") is not None:
        used.add("audio_output")
    if any(isinstance(t, Mapping) and t.get("type") == "custom" for t in body.get("tools") or ()):
        used.add("custom_tools")
    if body.get("prediction") is not None:
        used.add("predictions")
    if body.get("web_search_options") is not None:
        used.add("web_search")
    return used


def _unsupported(
    kind: str, field: str, what: str, instead: str = "", *, feature: str = ""
) -> UnsupportedFeatureError:
    message = f"Invalid request: {field}: {what} is unsupported by this {kind} server"
    return UnsupportedFeatureError(
        message + (f" ({instead})" if instead else ""), field=field, feature=feature
    )


_REASONING_MODEL = re.compile(r"^(o\d|gpt-5)", re.IGNORECASE)


_ATOMS = (str, int, float, bool, type(None))


def copy_body(body: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of a request body to rewrite, made for JSON data (dicts, lists, scalars).

    ``copy.deepcopy`` costs more than validating the request (nbchat.map fits thousands); any
    value that is not JSON data still goes through it.
    """
    return {key: _copy_value(value) for key, value in body.items()}


def _copy_value(value: Any) -> Any:
    kind = type(value)
    if kind in _ATOMS:
        return value
    if kind is dict:
        return {key: _copy_value(item) for key, item in value.items()}
    if kind is list:
        return [_copy_value(item) for item in value]
    return copy.deepcopy(value)


def _rename_role(body: dict[str, Any], old: str, new: str) -> None:
    for message in body.get("messages") or ():
        if isinstance(message, dict) and message.get("role") == old:
            message["role"] = new


def _has_images(messages: Iterable[Any]) -> bool:
    for message in messages:
        content = message.get("content") if isinstance(message, Mapping) else None
        if isinstance(content, list) and any(
            isinstance(part, Mapping) and part.get("type") == "image_url" for part in content
        ):
            return True
    return False


_ALL = dict.fromkeys(FEATURES, True)
# The newer parts of the API, which servers other than OpenAI's mostly lack.
_NEWER = ("audio_input", "audio_output", "files", "custom_tools", "predictions", "web_search")
_NONE_OF_THE_NEWER = {**dict.fromkeys(_NEWER, False), "stored_completions": False}

_KNOWN: dict[str, dict[str, Any]] = {
    "openai": {"features": dict(_ALL), "source": "platform.openai.com/docs/api-reference/chat"},
    "azure": {
        # Azure's Chat Completions has audio models, predicted outputs and stored completions;
        # what a deployment lacks beyond those is learned from its first refusal.
        "features": {**_ALL, "files": None, "custom_tools": None, "web_search": None},
        "auth": "api-key",
        "query": {"api-version": "2024-10-21"},
        "source": "learn.microsoft.com/azure/ai-foundry/openai/reference",
    },
    "openrouter": {
        # It routes to many providers: what a model lacks is learned; it stores nothing.
        "features": {
            **_ALL,
            "developer_role": None,
            **dict.fromkeys(_NEWER, None),
            "stored_completions": False,
        },
        "source": "openrouter.ai/docs/api-reference",
    },
    "vllm": {
        # Audio in with an audio model; no spoken replies, search, predictions or store.
        "features": {
            **_ALL,
            "developer_role": None,
            "vision": None,
            "tools": None,
            **_NONE_OF_THE_NEWER,
            "audio_input": None,
            "files": None,
            "custom_tools": None,
        },
        "source": "docs.vllm.ai/en/latest/serving/openai_compatible_server.html",
    },
    "ollama": {
        "features": {
            "stream_usage": True,
            "json_schema": True,
            "json_object": True,
            "n": False,
            **_NONE_OF_THE_NEWER,
        },
        "drops": ("logit_bias", "user"),
        "source": "docs.ollama.com/api/openai-compatibility",
    },
    "lmstudio": {
        "features": {"json_schema": True, "json_object": False, "n": False, **_NONE_OF_THE_NEWER},
        "source": "lmstudio.ai/docs/api/structured-output; lmstudio-bug-tracker issue 189",
    },
    "llama-server": {
        # Audio in with a model that hears (its multimodal projector); none of the rest.
        "features": {
            "json_schema": True,
            "json_object": True,
            "n": False,
            **_NONE_OF_THE_NEWER,
            "audio_input": None,
        },
        "source": "github.com/ggml-org/llama.cpp tools/server/README.md",
    },
    "llama-cpp-python": {
        "features": {
            "stream_usage": False,
            "json_schema": False,
            "json_object": True,
            "n": False,
            "vision": False,
            "developer_role": False,
            **_NONE_OF_THE_NEWER,
        },
        "source": "requests sent to llama-cpp-python 0.3.36 (nbchat/local)",
    },
    "generic": {},
}


def profile_for(kind: str, **changes: Any) -> ServerProfile:
    """A fresh profile of ``kind`` with what nbchat knows about that kind of server.

    ``changes`` override any field (``features`` are merged into the kind's own).
    """
    if kind not in KINDS:
        raise ValueError(f"Unknown server kind {kind!r}; one of: {', '.join(KINDS)}")
    known = copy.deepcopy(_KNOWN.get(kind, {}))
    features = {**known.pop("features", {}), **(changes.pop("features", None) or {})}
    known.update(changes)
    return ServerProfile(kind=kind, features=features, **known)


def configured_profile(kind: str, **changes: Any) -> ServerProfile:
    """The profile of a kind the user named: detection never changes it."""
    return profile_for(kind, configured=True, **changes)


def detect_profile(base_url: str) -> ServerProfile:
    """The profile a base URL suggests, without any request: hosts of known services, and the
    default ports of Ollama and LM Studio; anything else is ``generic`` until a reply says more.
    """
    import httpx

    url = httpx.URL(base_url)
    host = (url.host or "").lower()
    if host == "api.openai.com":
        return profile_for("openai")
    if host.endswith("openrouter.ai"):
        return profile_for("openrouter")
    if host.endswith((".openai.azure.com", ".cognitiveservices.azure.com")):
        return profile_for("azure", default_model=azure_deployment(base_url))
    if url.port == 11434:
        return profile_for("ollama")
    if url.port == 1234:
        return profile_for("lmstudio")
    return profile_for("generic")


def azure_deployment(base_url: str) -> str | None:
    """The deployment an Azure base URL names (``…/openai/deployments/NAME``), or None."""
    parts = [part for part in base_url.split("?")[0].split("/") if part]
    if "deployments" in parts:
        index = parts.index("deployments")
        if index + 1 < len(parts):
            return parts[index + 1]
    return None


def kind_from_models(payload: Any) -> str | None:
    """The server kind a ``GET /models`` body reveals (its ``owned_by`` values), or None."""
    data = payload.get("data") if isinstance(payload, Mapping) else None
    owners = {
        entry.get("owned_by")
        for entry in data or ()
        if isinstance(entry, Mapping) and isinstance(entry.get("owned_by"), str)
    }
    for owner, kind in (
        ("vllm", "vllm"),
        ("llamacpp", "llama-server"),
        ("organization_owner", "lmstudio"),
        ("library", "ollama"),
        ("me", "llama-cpp-python"),
    ):
        if owner in owners:
            return kind
    return None


def context_from_models(payload: Any, model: str | None) -> int | None:
    """The context window a ``GET /models`` body gives for ``model`` (vLLM's
    ``max_model_len``, llama-server's ``meta.n_ctx_train``), or None."""
    data = payload.get("data") if isinstance(payload, Mapping) else None
    for entry in data or ():
        if not isinstance(entry, Mapping) or (model and entry.get("id") != model):
            continue
        value = entry.get("max_model_len")
        meta = entry.get("meta")
        if value is None and isinstance(meta, Mapping):
            value = meta.get("n_ctx_train")
        if isinstance(value, int) and value > 0:
            return value
    return None
