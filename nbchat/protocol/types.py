"""Protocol types of the Chat Completions API, as pydantic v2 models.

They know nothing of HTTP or notebooks. Requests are strict about the fields the specification
names (OpenAI's OpenAPI description of ``POST /chat/completions``; ``tests/openapi/`` holds the
version they follow) and pass others through; responses accept anything a server adds, and a
part they do not know (a new kind of tool call or annotation) is kept as it came rather than
refusing the whole reply.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

__all__ = [
    "AUDIO_FORMATS",
    "INPUT_AUDIO_FORMATS",
    "REASONING_EFFORTS",
    "SERVICE_TIERS",
    "VERBOSITIES",
    "VOICES",
    "WEB_SEARCH_CONTEXT_SIZES",
    "AllowedToolsChoice",
    "Annotation",
    "AnyToolCall",
    "AssistantMessage",
    "AudioDelta",
    "AudioOutput",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatCompletionDeleted",
    "ChatCompletionList",
    "ChatCompletionMessage",
    "ChatCompletionRequest",
    "Choice",
    "ChoiceDelta",
    "ChoiceLogprobs",
    "ChunkChoice",
    "CompletionTokensDetails",
    "CustomCall",
    "CustomCallDelta",
    "CustomTool",
    "CustomToolCall",
    "CustomToolChoice",
    "DeveloperMessage",
    "ErrorBody",
    "ErrorObject",
    "FileData",
    "FilePart",
    "FunctionCall",
    "FunctionCallDelta",
    "FunctionDefinition",
    "FunctionMessage",
    "ImageURL",
    "ImageURLPart",
    "InputAudio",
    "InputAudioPart",
    "JSONSchemaFormat",
    "Message",
    "Moderation",
    "ModerationError",
    "ModerationResult",
    "ModerationResults",
    "NamedToolChoice",
    "OtherAnnotation",
    "OtherToolCall",
    "Prediction",
    "PromptTokensDetails",
    "RefusalPart",
    "ResponseAudio",
    "ResponseFormat",
    "StoredMessage",
    "StoredMessageList",
    "StreamOptions",
    "SystemMessage",
    "TextPart",
    "TokenLogprob",
    "ToolCall",
    "ToolCallDelta",
    "ToolDefinition",
    "ToolMessage",
    "TopLogprob",
    "URLCitation",
    "URLCitationAnnotation",
    "Usage",
    "UserMessage",
    "WebSearchOptions",
]

from .values import (
    AUDIO_FORMATS,
    INPUT_AUDIO_FORMATS,
    REASONING_EFFORTS,
    SERVICE_TIERS,
    VERBOSITIES,
    VOICES,
    WEB_SEARCH_CONTEXT_SIZES,
)

_ReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"]
_ServiceTier = Literal["auto", "default", "flex", "scale", "priority", "fast"]
_Verbosity = Literal["low", "medium", "high"]
_Name = Annotated[str, Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")]


class _Request(BaseModel):
    """Base of everything we send: unknown fields pass through untouched."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    # Tags (role, type) have defaults so that callers may leave them out, yet the server needs
    # them: they count as set even when built as ``UserMessage(content=...)``.
    _always_sent: ClassVar[tuple[str, ...]] = ()

    def model_post_init(self, context: Any, /) -> None:
        if self._always_sent:
            self.__pydantic_fields_set__.update(self._always_sent)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready dict of exactly the fields that were set."""
        return self.model_dump(mode="json", exclude_unset=True, by_alias=True)


class _Response(BaseModel):
    """Base of everything we receive: unknown fields are kept, never an error."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_unset=True, by_alias=True)


def _field_error(field: str, problem: str) -> PydanticCustomError:
    # A rule across fields fails on the model as a whole; the context says which field to blame.
    return PydanticCustomError(
        "field_rule", "{field} {problem}", {"field": field, "problem": problem}
    )


# ---------------------------------------------------------------------------------------------
# Content parts


class _PromptCacheBreakpoint(_Request):
    _always_sent = ("mode",)

    mode: Literal["explicit"] = "explicit"


class TextPart(_Request):
    _always_sent = ("type",)

    type: Literal["text"] = "text"
    text: str
    prompt_cache_breakpoint: _PromptCacheBreakpoint | None = None


class ImageURL(_Request):
    url: str
    detail: Literal["low", "high", "auto"] | None = None


class ImageURLPart(_Request):
    _always_sent = ("type",)

    type: Literal["image_url"] = "image_url"
    image_url: ImageURL
    prompt_cache_breakpoint: _PromptCacheBreakpoint | None = None


class InputAudio(_Request):
    data: str
    format: Literal["wav", "mp3"]


class InputAudioPart(_Request):
    """A recording sent to the model (base64 WAV or MP3)."""

    _always_sent = ("type",)

    type: Literal["input_audio"] = "input_audio"
    input_audio: InputAudio
    prompt_cache_breakpoint: _PromptCacheBreakpoint | None = None


class FileData(_Request):
    filename: str | None = None
    file_data: str | None = None
    file_id: str | None = None

    @model_validator(mode="after")
    def _data_or_id(self) -> FileData:
        # The specification requires neither, but a file part with neither sends no file.
        if self.file_data is None and self.file_id is None:
            raise ValueError("a file needs file_data (with a filename) or a file_id")
        return self


class FilePart(_Request):
    """A file sent to the model: its base64 data with a filename, or the id of an upload."""

    _always_sent = ("type",)

    type: Literal["file"] = "file"
    file: FileData
    prompt_cache_breakpoint: _PromptCacheBreakpoint | None = None


class RefusalPart(_Request):
    _always_sent = ("type",)

    type: Literal["refusal"] = "refusal"
    refusal: str


UserContentPart = Annotated[
    TextPart | ImageURLPart | InputAudioPart | FilePart, Field(discriminator="type")
]
AssistantContentPart = Annotated[TextPart | RefusalPart, Field(discriminator="type")]
# Kept for callers of the name: the parts a user message takes.
ContentPart = UserContentPart
# A list of parts needs at least one: servers answer 400 to an empty one.
_TextParts = Annotated[list[TextPart], Field(min_length=1)]
_UserParts = Annotated[list[UserContentPart], Field(min_length=1)]
_AssistantParts = Annotated[list[AssistantContentPart], Field(min_length=1)]


# ---------------------------------------------------------------------------------------------
# Tool calls (in replies, and in the assistant messages sent back)


class FunctionCall(_Response):
    name: str
    arguments: str = ""

    def model_post_init(self, context: Any, /) -> None:
        # A server may leave the arguments out; sent back in the history they are required.
        self.__pydantic_fields_set__.add("arguments")


class CustomCall(_Response):
    name: str
    input: str = ""

    def model_post_init(self, context: Any, /) -> None:
        self.__pydantic_fields_set__.add("input")


class ToolCall(_Response):
    """A call of a function tool: ``function.arguments`` is JSON text."""

    id: str
    type: str = "function"
    function: FunctionCall

    def model_post_init(self, context: Any, /) -> None:
        # Sent back in an assistant message, a tool call needs its type even when left out.
        self.__pydantic_fields_set__.add("type")

    @property
    def name(self) -> str:
        """The tool's name (the same for every kind of call)."""
        return self.function.name

    @property
    def payload(self) -> str:
        """What the model sent the tool: a function's arguments (JSON text)."""
        return self.function.arguments


class CustomToolCall(_Response):
    """A call of a custom tool: ``custom.input`` is free text (or text in its grammar)."""

    id: str
    type: Literal["custom"] = "custom"
    custom: CustomCall

    def model_post_init(self, context: Any, /) -> None:
        self.__pydantic_fields_set__.add("type")

    @property
    def name(self) -> str:
        return self.custom.name

    @property
    def payload(self) -> str:
        """What the model sent the tool: a custom tool's raw input."""
        return self.custom.input


class OtherToolCall(_Response):
    """A kind of call nbchat does not know: kept as it came (the tool loop answers it with an
    error), so the rest of the reply is not lost."""

    id: str
    type: str = ""

    @property
    def name(self) -> str:
        body = (self.__pydantic_extra__ or {}).get(self.type)
        name = body.get("name") if isinstance(body, dict) else None
        return name if isinstance(name, str) else ""

    @property
    def payload(self) -> str:
        return ""


def _call_kind(value: Any) -> str:
    if isinstance(value, dict):
        kind = value.get("type")
        if kind is None:
            # Servers that leave the type out: the body it carries says which.
            kind = "custom" if "custom" in value else "function"
    else:
        kind = getattr(value, "type", None)
    return kind if kind in ("function", "custom") else "other"


# What a reply's tool_calls hold: function and custom calls, and any other kind kept as it came.
AnyToolCall = Annotated[
    Annotated[ToolCall, Tag("function")]
    | Annotated[CustomToolCall, Tag("custom")]
    | Annotated[OtherToolCall, Tag("other")],
    Discriminator(_call_kind),
]


class _SentFunction(_Request):
    model_config = ConfigDict(extra="allow", from_attributes=True)

    name: str
    arguments: str


class _SentFunctionCall(_Request):
    model_config = ConfigDict(extra="allow", from_attributes=True)
    _always_sent = ("type",)

    id: str
    type: Literal["function"] = "function"
    function: _SentFunction


class _SentCustom(_Request):
    model_config = ConfigDict(extra="allow", from_attributes=True)

    name: str
    input: str


class _SentCustomCall(_Request):
    model_config = ConfigDict(extra="allow", from_attributes=True)
    _always_sent = ("type",)

    id: str
    type: Literal["custom"] = "custom"
    custom: _SentCustom


def _sent_call_kind(value: Any) -> str:
    if isinstance(value, dict):
        kind = value.get("type")
        if kind is None:
            kind = "custom" if "custom" in value else "function"
        return str(kind)
    return str(getattr(value, "type", "function"))


# What an assistant message sent back may hold: the two kinds the specification names, whole
# (a reply's call tolerates a missing ``arguments``; the request that sends it back may not).
_RequestToolCall = Annotated[
    Annotated[_SentFunctionCall, Tag("function")] | Annotated[_SentCustomCall, Tag("custom")],
    Discriminator(_sent_call_kind),
]


# ---------------------------------------------------------------------------------------------
# Messages


class SystemMessage(_Request):
    _always_sent = ("role",)

    role: Literal["system"] = "system"
    content: str | _TextParts
    name: str | None = None


class DeveloperMessage(_Request):
    _always_sent = ("role",)

    role: Literal["developer"] = "developer"
    content: str | _TextParts
    name: str | None = None


class UserMessage(_Request):
    _always_sent = ("role",)

    role: Literal["user"] = "user"
    content: str | _UserParts
    name: str | None = None


class _AudioReference(_Request):
    id: str = Field(min_length=1)


class AssistantMessage(_Request):
    _always_sent = ("role",)

    role: Literal["assistant"] = "assistant"
    content: str | _AssistantParts | None = None
    refusal: str | None = None
    tool_calls: list[_RequestToolCall] | None = None
    name: str | None = None
    #: A spoken reply, sent back by the id of its audio (the server keeps the audio itself).
    audio: _AudioReference | None = None
    #: Deprecated by tool_calls, still part of the protocol.
    function_call: _SentFunction | None = None

    @model_validator(mode="after")
    def _content_or_tool_calls(self) -> AssistantMessage:
        if (
            self.content is None
            and not self.tool_calls
            and self.refusal is None
            and self.audio is None
            and self.function_call is None
        ):
            raise ValueError(
                "an assistant message needs content, tool_calls, refusal, audio or function_call"
            )
        return self


class ToolMessage(_Request):
    _always_sent = ("role",)

    role: Literal["tool"] = "tool"
    tool_call_id: str
    content: str | _TextParts


class FunctionMessage(_Request):
    """The deprecated answer to a ``function_call``."""

    _always_sent = ("role",)

    role: Literal["function"] = "function"
    content: str | None
    name: str


Message = Annotated[
    SystemMessage
    | DeveloperMessage
    | UserMessage
    | AssistantMessage
    | ToolMessage
    | FunctionMessage,
    Field(discriminator="role"),
]


# ---------------------------------------------------------------------------------------------
# Tools and output control


class FunctionDefinition(_Request):
    name: _Name
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolDefinition(_Request):
    _always_sent = ("type",)

    type: Literal["function"] = "function"
    function: FunctionDefinition


class _TextInputFormat(_Request):
    type: Literal["text"]


class _Grammar(_Request):
    definition: str
    syntax: Literal["lark", "regex"]


class _GrammarInputFormat(_Request):
    type: Literal["grammar"]
    grammar: _Grammar


class _CustomToolProperties(_Request):
    name: str = Field(min_length=1)
    description: str | None = None
    format: (
        Annotated[_TextInputFormat | _GrammarInputFormat, Field(discriminator="type")] | None
    ) = None


class CustomTool(_Request):
    """A tool that takes free text (or text in a lark or regex grammar) instead of JSON."""

    _always_sent = ("type",)

    type: Literal["custom"] = "custom"
    custom: _CustomToolProperties


_Tool = Annotated[ToolDefinition | CustomTool, Field(discriminator="type")]


class _ToolChoiceFunction(_Request):
    name: str


class NamedToolChoice(_Request):
    _always_sent = ("type",)

    type: Literal["function"] = "function"
    function: _ToolChoiceFunction


class CustomToolChoice(_Request):
    _always_sent = ("type",)

    type: Literal["custom"] = "custom"
    custom: _ToolChoiceFunction


class _AllowedTools(_Request):
    mode: Literal["auto", "required"]
    tools: list[dict[str, Any]]


class AllowedToolsChoice(_Request):
    """The model may call only these of the request's tools (and must, in mode required)."""

    _always_sent = ("type",)

    type: Literal["allowed_tools"] = "allowed_tools"
    allowed_tools: _AllowedTools


_ToolChoice = (
    Literal["auto", "required", "none"]
    | Annotated[
        NamedToolChoice | CustomToolChoice | AllowedToolsChoice, Field(discriminator="type")
    ]
)


class _FunctionCallOption(_Request):
    name: str


class _LegacyFunction(_Request):
    name: _Name
    description: str | None = None
    parameters: dict[str, Any] | None = None


class _TextFormat(_Request):
    type: Literal["text"]


class _JSONObjectFormat(_Request):
    type: Literal["json_object"]


class JSONSchemaFormat(_Request):
    name: _Name
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class _JSONSchemaResponseFormat(_Request):
    type: Literal["json_schema"]
    json_schema: JSONSchemaFormat


ResponseFormat = Annotated[
    _TextFormat | _JSONObjectFormat | _JSONSchemaResponseFormat, Field(discriminator="type")
]


class StreamOptions(_Request):
    include_usage: bool | None = None
    #: False leaves out the padding (``obfuscation``) that evens out the chunks' sizes.
    include_obfuscation: bool | None = None


class _CustomVoice(_Request):
    model_config = ConfigDict(extra="forbid")

    id: str


class AudioOutput(_Request):
    """``audio``: how a spoken reply sounds and is encoded (with ``modalities`` ["audio"])."""

    # The specification takes any voice name besides those it lists (new voices come first to
    # the API); nbchat's options offer the listed ones.
    voice: str | _CustomVoice
    format: Literal["wav", "aac", "mp3", "flac", "opus", "pcm16"]


class Prediction(_Request):
    """``prediction``: text the reply is expected to repeat mostly (a file being edited)."""

    _always_sent = ("type",)

    type: Literal["content"] = "content"
    content: str | _TextParts


class _Location(_Request):
    country: str | None = None
    region: str | None = None
    city: str | None = None
    timezone: str | None = None


class _UserLocation(_Request):
    type: Literal["approximate"]
    approximate: _Location


class WebSearchOptions(_Request):
    user_location: _UserLocation | None = None
    search_context_size: Literal["low", "medium", "high"] | None = None


class _PromptCacheOptions(_Request):
    ttl: Literal["30m"] | None = None
    mode: Literal["implicit", "explicit"] | None = None


class _ModerationConfig(_Request):
    mode: Literal["score", "block"]


class _ModerationPolicy(_Request):
    input: _ModerationConfig | None = None
    output: _ModerationConfig | None = None


class _ModerationParam(_Request):
    model: str
    policy: _ModerationPolicy | None = None


# ---------------------------------------------------------------------------------------------
# The request

_INT64 = 2**63
_METADATA_PAIRS, _METADATA_KEY, _METADATA_VALUE = 16, 64, 512


def check_metadata(value: Any) -> Any:
    """``metadata``: at most 16 pairs of strings, keys up to 64 characters, values up to 512."""
    if value is None:
        return value
    if not isinstance(value, dict):
        raise ValueError("must map names to strings")
    if len(value) > _METADATA_PAIRS:
        raise ValueError(f"takes at most {_METADATA_PAIRS} pairs, got {len(value)}")
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise ValueError(f"{key!r}: keys and values must be strings")
        if len(key) > _METADATA_KEY:
            raise ValueError(f"key {key[:20]!r}… is longer than {_METADATA_KEY} characters")
        if len(item) > _METADATA_VALUE:
            raise ValueError(f"the value of {key!r} is longer than {_METADATA_VALUE} characters")
    return value


class ChatCompletionRequest(_Request):
    """Every field of ``POST /chat/completions``; others pass through for servers that add some."""

    model: str = Field(min_length=1)
    messages: list[Message] = Field(min_length=1)

    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    n: int | None = Field(default=None, ge=1, le=128)
    stop: str | list[str] | None = None
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    logit_bias: dict[str, float] | None = None
    seed: int | None = Field(default=None, ge=-_INT64, le=_INT64 - 1)
    user: str | None = None
    safety_identifier: str | None = Field(default=None, max_length=64)

    tools: list[_Tool] | None = None
    tool_choice: _ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    # Deprecated by tools and tool_choice, still part of the protocol.
    functions: list[_LegacyFunction] | None = Field(default=None, min_length=1, max_length=128)
    function_call: Literal["none", "auto"] | _FunctionCallOption | None = None

    stream: bool | None = None
    stream_options: StreamOptions | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    response_format: ResponseFormat | None = None

    modalities: list[Literal["text", "audio"]] | None = None
    audio: AudioOutput | None = None
    prediction: Prediction | None = None
    web_search_options: WebSearchOptions | None = None
    reasoning_effort: _ReasoningEffort | None = None
    verbosity: _Verbosity | None = None
    service_tier: _ServiceTier | None = None
    prompt_cache_key: str | None = None
    prompt_cache_options: _PromptCacheOptions | None = None
    prompt_cache_retention: Literal["in_memory", "24h"] | None = None
    moderation: _ModerationParam | None = None

    store: bool | None = None
    metadata: dict[str, str] | None = None

    @field_validator(
        "temperature",
        "top_p",
        "max_tokens",
        "max_completion_tokens",
        "n",
        "presence_penalty",
        "frequency_penalty",
        "seed",
        "top_logprobs",
        mode="before",
    )
    @classmethod
    def _no_bool_numbers(cls, value: Any) -> Any:
        # pydantic would read True as 1: a number field given a flag is a mistake, not a 1.
        if isinstance(value, bool):
            raise ValueError(f"must be a number, not {value}")
        return value

    @field_validator("stop")
    @classmethod
    def _stop_sequences(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and not 1 <= len(value) <= 4:
            raise ValueError(f"takes a string or 1 to 4 strings, got {len(value)}")
        return value

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, value: Any) -> Any:
        # After pydantic checked the types (so that a bad value is named by its key).
        return check_metadata(value)

    @field_validator("logit_bias", mode="before")
    @classmethod
    def _logit_bias(cls, value: Any) -> Any:
        if value is None:
            return value
        if not isinstance(value, dict):
            raise ValueError("must map token ids to biases")
        checked = {}
        for token, bias in value.items():
            if not str(token).isdigit():
                raise ValueError(f"token id {token!r} is not a whole number")
            if isinstance(bias, bool) or not isinstance(bias, int | float):
                raise ValueError(f"bias for token {token} must be a number")
            if not -100 <= bias <= 100:
                raise ValueError(f"bias for token {token} must be between -100 and 100")
            checked[str(token)] = bias
        return checked

    @model_validator(mode="after")
    def _cross_field_rules(self) -> ChatCompletionRequest:
        if self.top_logprobs is not None and not self.logprobs:
            raise _field_error("top_logprobs", "needs logprobs=True")
        if self.stream_options is not None and not self.stream:
            raise _field_error("stream_options", "is only allowed with stream=True")
        if self.parallel_tool_calls is not None and not self.tools:
            raise _field_error("parallel_tool_calls", "needs tools")
        self._check_tool_choice()
        self._check_function_call()
        spoken = "audio" in (self.modalities or ())
        if self.audio is not None and not spoken:
            raise _field_error("audio", 'needs modalities with "audio" (["text", "audio"])')
        if spoken and self.audio is None:
            raise _field_error("modalities", 'with "audio" needs audio={"voice": …, "format": …}')
        return self

    def _check_tool_choice(self) -> None:
        choice = self.tool_choice
        if choice is None or choice == "none":
            return
        if not self.tools:
            raise _field_error("tool_choice", "needs tools")
        names = {
            "function": {t.function.name for t in self.tools if isinstance(t, ToolDefinition)},
            "custom": {t.custom.name for t in self.tools if isinstance(t, CustomTool)},
        }
        if isinstance(choice, NamedToolChoice | CustomToolChoice):
            named: str = choice.type
            name = (
                choice.function.name if isinstance(choice, NamedToolChoice) else choice.custom.name
            )
            if name not in names[named]:
                raise _field_error("tool_choice", f"names {name!r}, which is not a {named} tool")
        elif isinstance(choice, AllowedToolsChoice):
            for entry in choice.allowed_tools.tools:
                kind = entry.get("type")
                body = entry.get(kind) if isinstance(kind, str) else None
                allowed = body.get("name") if isinstance(body, dict) else None
                if not isinstance(kind, str) or kind not in names or not isinstance(allowed, str):
                    raise _field_error(
                        "tool_choice",
                        'allowed_tools entries are {"type": "function"|"custom", '
                        '"function"|"custom": {"name": …}}',
                    )
                if allowed not in names[kind]:
                    raise _field_error(
                        "tool_choice", f"allows {allowed!r}, which is not a {kind} tool"
                    )

    def _check_function_call(self) -> None:
        call = self.function_call
        if call is None or call == "none":
            return
        if not self.functions:
            raise _field_error("function_call", "needs functions")
        if isinstance(call, _FunctionCallOption) and call.name not in {
            f.name for f in self.functions
        }:
            raise _field_error("function_call", f"names {call.name!r}, which is not in functions")

    def to_dict(self) -> dict[str, Any]:
        """Exactly the fields the caller set: no defaults and no top-level nulls."""
        body = super().to_dict()
        return {key: value for key, value in body.items() if value is not None}


# ---------------------------------------------------------------------------------------------
# Responses


class TopLogprob(_Response):
    token: str
    logprob: float
    bytes: list[int] | None = None


class TokenLogprob(_Response):
    token: str
    logprob: float
    bytes: list[int] | None = None
    top_logprobs: list[TopLogprob] = Field(default_factory=list)


class ChoiceLogprobs(_Response):
    content: list[TokenLogprob] | None = None
    refusal: list[TokenLogprob] | None = None


class URLCitation(_Response):
    url: str
    title: str = ""
    start_index: int | None = None
    end_index: int | None = None


class URLCitationAnnotation(_Response):
    """A web source the reply cites for the text between ``start_index`` and ``end_index``."""

    type: Literal["url_citation"] = "url_citation"
    url_citation: URLCitation


class OtherAnnotation(_Response):
    """An annotation nbchat does not know (or a citation without a URL): kept as it came."""

    type: str = ""


Annotation = Annotated[URLCitationAnnotation | OtherAnnotation, Field(union_mode="left_to_right")]


class ResponseAudio(_Response):
    """A spoken reply: base64 audio, its transcript, and the id that refers to it later."""

    id: str = ""
    data: str = ""
    transcript: str = ""
    expires_at: int | None = None


class ChatCompletionMessage(_Response):
    role: str = "assistant"
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[AnyToolCall] | None = None
    annotations: list[Annotation] | None = None
    # A spoken reply; anything else a server puts there is kept as it came.
    audio: Annotated[ResponseAudio | Any, Field(union_mode="left_to_right")] = None
    #: Deprecated by tool_calls, still sent by servers answering ``functions``.
    function_call: FunctionCall | None = None


class Choice(_Response):
    index: int = 0
    message: ChatCompletionMessage
    logprobs: ChoiceLogprobs | None = None
    # Servers add values of their own; the specification's are stop, length, tool_calls,
    # content_filter and function_call.
    finish_reason: str | None = None


class PromptTokensDetails(_Response):
    cached_tokens: int | None = None
    audio_tokens: int | None = None
    text_tokens: int | None = None
    image_tokens: int | None = None
    cache_write_tokens: int | None = None


class CompletionTokensDetails(_Response):
    reasoning_tokens: int | None = None
    audio_tokens: int | None = None
    text_tokens: int | None = None
    accepted_prediction_tokens: int | None = None
    rejected_prediction_tokens: int | None = None


class Usage(_Response):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    prompt_tokens_details: PromptTokensDetails | None = None
    completion_tokens_details: CompletionTokensDetails | None = None


class ModerationResult(_Response):
    type: str = "moderation_result"
    model: str = ""
    flagged: bool = False
    categories: dict[str, bool] | None = None
    category_scores: dict[str, float] | None = None
    category_applied_input_types: dict[str, list[str]] | None = None


class ModerationResults(_Response):
    """What moderation found in the request's input or the reply's output."""

    type: Literal["moderation_results"] = "moderation_results"
    model: str = ""
    results: list[ModerationResult] = Field(default_factory=list)


class ModerationError(_Response):
    """Moderation that could not be done (or a verdict nbchat does not know, kept as it came)."""

    type: str = "error"
    code: str | None = None
    message: str | None = None


_ModerationVerdict = Annotated[
    ModerationResults | ModerationError, Field(union_mode="left_to_right")
]


class Moderation(_Response):
    """``moderation`` of a reply: results (or an error) for the input and for the output."""

    input: _ModerationVerdict | None = None
    output: _ModerationVerdict | None = None


class ChatCompletion(_Response):
    id: str = ""
    object: str = "chat.completion"
    created: int = 0
    model: str = ""
    system_fingerprint: str | None = None
    service_tier: str | None = None
    choices: list[Choice] = Field(default_factory=list)
    usage: Usage | None = None
    #: Set on a stored completion (``store=True`` with ``metadata``).
    metadata: Annotated[dict[str, Any] | Any, Field(union_mode="left_to_right")] = None
    # Kept as it came when it is not what the specification describes: never worth a reply.
    moderation: Annotated[Moderation | Any, Field(union_mode="left_to_right")] = None

    @property
    def content(self) -> str | None:
        """The first choice's text, the usual thing one wants."""
        return self.choices[0].message.content if self.choices else None


class FunctionCallDelta(_Response):
    name: str | None = None
    arguments: str | None = None


class CustomCallDelta(_Response):
    name: str | None = None
    input: str | None = None


class ToolCallDelta(_Response):
    index: int | None = None
    id: str | None = None
    type: str | None = None
    function: FunctionCallDelta | None = None
    custom: CustomCallDelta | None = None


class AudioDelta(_Response):
    """A piece of a spoken reply: base64 audio and transcript arrive in pieces."""

    id: str | None = None
    data: str | None = None
    transcript: str | None = None
    expires_at: int | None = None


class ChoiceDelta(_Response):
    role: str | None = None
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[ToolCallDelta] | None = None
    function_call: FunctionCallDelta | None = None
    audio: AudioDelta | None = None
    annotations: list[Annotation] | None = None


class ChunkChoice(_Response):
    index: int = 0
    delta: ChoiceDelta = Field(default_factory=ChoiceDelta)
    logprobs: ChoiceLogprobs | None = None
    finish_reason: str | None = None


class ChatCompletionChunk(_Response):
    id: str = ""
    object: str = "chat.completion.chunk"
    created: int = 0
    model: str = ""
    system_fingerprint: str | None = None
    service_tier: str | None = None
    choices: list[ChunkChoice] | None = None
    usage: Usage | None = None
    moderation: Annotated[Moderation | Any, Field(union_mode="left_to_right")] = None
    #: Random padding that evens out the chunks' sizes: part of the transport, not the reply.
    obfuscation: str | None = None


class ErrorObject(_Response):
    message: str = ""
    type: str | None = None
    param: str | None = None
    code: str | int | None = None


class ErrorBody(_Response):
    error: ErrorObject


# ---------------------------------------------------------------------------------------------
# Stored completions (``store=True``): the lists the server pages through


class ChatCompletionList(_Response):
    object: str = "list"
    data: list[ChatCompletion] = Field(default_factory=list)
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False


class StoredMessage(ChatCompletionMessage):
    """A message of a stored completion (the request's and the reply's), with its id."""

    id: str = ""
    content_parts: list[dict[str, Any]] | None = None


class StoredMessageList(_Response):
    object: str = "list"
    data: list[StoredMessage] = Field(default_factory=list)
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False


class ChatCompletionDeleted(_Response):
    object: str = "chat.completion.deleted"
    id: str = ""
    deleted: bool = False
