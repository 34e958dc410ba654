"""Protocol types of the Chat Completions API, as pydantic v2 models.

They know nothing of HTTP or notebooks. Requests are strict about the fields the reference
names and pass others through; responses accept anything a server adds.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

__all__ = [
    "AssistantMessage",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatCompletionMessage",
    "ChatCompletionRequest",
    "Choice",
    "ChoiceDelta",
    "ChoiceLogprobs",
    "ChunkChoice",
    "CompletionTokensDetails",
    "DeveloperMessage",
    "ErrorBody",
    "ErrorObject",
    "FunctionCall",
    "FunctionCallDelta",
    "FunctionDefinition",
    "ImageURL",
    "ImageURLPart",
    "JSONSchemaFormat",
    "Message",
    "NamedToolChoice",
    "PromptTokensDetails",
    "ResponseFormat",
    "StreamOptions",
    "SystemMessage",
    "TextPart",
    "TokenLogprob",
    "ToolCall",
    "ToolCallDelta",
    "ToolDefinition",
    "ToolMessage",
    "TopLogprob",
    "Usage",
    "UserMessage",
]


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


# ---------------------------------------------------------------------------------------------
# Messages


class TextPart(_Request):
    _always_sent = ("type",)

    type: Literal["text"] = "text"
    text: str


class ImageURL(_Request):
    url: str
    detail: Literal["low", "high", "auto"] | None = None


class ImageURLPart(_Request):
    _always_sent = ("type",)

    type: Literal["image_url"] = "image_url"
    image_url: ImageURL


ContentPart = Annotated[TextPart | ImageURLPart, Field(discriminator="type")]
# A list of parts needs at least one: servers answer 400 to an empty one.
_TextParts = Annotated[list[TextPart], Field(min_length=1)]
_ContentParts = Annotated[list[ContentPart], Field(min_length=1)]


class FunctionCall(_Response):
    name: str
    arguments: str = ""


class ToolCall(_Response):
    id: str
    type: str = "function"
    function: FunctionCall

    def model_post_init(self, context: Any, /) -> None:
        # Sent back in an assistant message, a tool call needs its type even when left out.
        self.__pydantic_fields_set__.add("type")


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
    content: str | _ContentParts
    name: str | None = None


class AssistantMessage(_Request):
    _always_sent = ("role",)

    role: Literal["assistant"] = "assistant"
    content: str | _TextParts | None = None
    refusal: str | None = None
    tool_calls: list[ToolCall] | None = None
    name: str | None = None

    @model_validator(mode="after")
    def _content_or_tool_calls(self) -> AssistantMessage:
        if self.content is None and not self.tool_calls and self.refusal is None:
            raise ValueError("an assistant message needs content, tool_calls or refusal")
        return self


class ToolMessage(_Request):
    _always_sent = ("role",)

    role: Literal["tool"] = "tool"
    tool_call_id: str
    content: str | _TextParts


Message = Annotated[
    SystemMessage | DeveloperMessage | UserMessage | AssistantMessage | ToolMessage,
    Field(discriminator="role"),
]


# ---------------------------------------------------------------------------------------------
# Tools and output control


class FunctionDefinition(_Request):
    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolDefinition(_Request):
    _always_sent = ("type",)

    type: Literal["function"] = "function"
    function: FunctionDefinition


class _ToolChoiceFunction(_Request):
    name: str


class NamedToolChoice(_Request):
    _always_sent = ("type",)

    type: Literal["function"] = "function"
    function: _ToolChoiceFunction


class _TextFormat(_Request):
    type: Literal["text"]


class _JSONObjectFormat(_Request):
    type: Literal["json_object"]


class JSONSchemaFormat(_Request):
    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
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


# ---------------------------------------------------------------------------------------------
# The request


class ChatCompletionRequest(_Request):
    """Every field of ``POST /chat/completions``; others pass through for servers that add some."""

    model: str = Field(min_length=1)
    messages: list[Message] = Field(min_length=1)

    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    n: int | None = Field(default=None, ge=1)
    stop: str | list[str] | None = None
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    logit_bias: dict[str, float] | None = None
    seed: int | None = None
    user: str | None = None

    tools: list[ToolDefinition] | None = None
    tool_choice: Literal["auto", "required", "none"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None

    stream: bool | None = None
    stream_options: StreamOptions | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    response_format: ResponseFormat | None = None

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
        if self.tool_choice is not None and self.tool_choice != "none" and not self.tools:
            raise _field_error("tool_choice", "needs tools")
        if self.parallel_tool_calls is not None and not self.tools:
            raise _field_error("parallel_tool_calls", "needs tools")
        return self

    def to_dict(self) -> dict[str, Any]:
        """Exactly the fields the caller set: no defaults and no top-level nulls."""
        body = super().to_dict()
        return {key: value for key, value in body.items() if value is not None}


def _field_error(field: str, problem: str) -> PydanticCustomError:
    # A rule across fields fails on the model as a whole; the context says which field to blame.
    return PydanticCustomError(
        "field_rule", "{field} {problem}", {"field": field, "problem": problem}
    )


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


class ChatCompletionMessage(_Response):
    role: str = "assistant"
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[ToolCall] | None = None


class Choice(_Response):
    index: int = 0
    message: ChatCompletionMessage
    logprobs: ChoiceLogprobs | None = None
    # Servers add values of their own; the reference's are stop, length, tool_calls,
    # content_filter.
    finish_reason: str | None = None


class PromptTokensDetails(_Response):
    cached_tokens: int | None = None
    audio_tokens: int | None = None


class CompletionTokensDetails(_Response):
    reasoning_tokens: int | None = None
    audio_tokens: int | None = None
    accepted_prediction_tokens: int | None = None
    rejected_prediction_tokens: int | None = None


class Usage(_Response):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    prompt_tokens_details: PromptTokensDetails | None = None
    completion_tokens_details: CompletionTokensDetails | None = None


class ChatCompletion(_Response):
    id: str = ""
    object: str = "chat.completion"
    created: int = 0
    model: str = ""
    system_fingerprint: str | None = None
    service_tier: str | None = None
    choices: list[Choice] = Field(default_factory=list)
    usage: Usage | None = None

    @property
    def content(self) -> str | None:
        """The first choice's text, the usual thing one wants."""
        return self.choices[0].message.content if self.choices else None


class FunctionCallDelta(_Response):
    name: str | None = None
    arguments: str | None = None


class ToolCallDelta(_Response):
    index: int | None = None
    id: str | None = None
    type: str | None = None
    function: FunctionCallDelta | None = None


class ChoiceDelta(_Response):
    role: str | None = None
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[ToolCallDelta] | None = None


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


class ErrorObject(_Response):
    message: str = ""
    type: str | None = None
    param: str | None = None
    code: str | int | None = None


class ErrorBody(_Response):
    error: ErrorObject
