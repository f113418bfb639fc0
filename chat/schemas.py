"""The chat request bodies as pydantic models: `parse_external_chat` and
`parse_chat_completion` return a validated, frozen request or raise a `BadRequest` naming the
field in the wire's notation (see `aiflowy.validation`).

The returned objects are the models themselves (no second copy into dataclasses: that would
cost the hot path a construction per request). Messages come out as plain
`{"role", "content": str}` dicts, as the services and the upstream client use them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    Strict,
    StringConstraints,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError
from typing_extensions import TypedDict  # pydantic needs it on Python < 3.12

from aiflowy.validation import Flag, Id, JsonObject, Text, between, text_checked, validated

# OpenAI's newer name for system instructions; sent upstream as `system`.
OPENAI_ROLE_ALIASES = {"developer": "system"}
# The longest chat id, custom uid or answer id we store (the columns' length).
MAX_EXTERNAL_ID_LENGTH = 250
# No bot's name (at most 100 characters) or id (at most 19 digits) is longer; a longer `model`
# names no bot, and a digit string past 4,300 digits would make `int()` fail downstream.
MAX_MODEL_LENGTH = 256


# --- shared field types (the history API's query parameters use them too) -----------------------
def _none_is_blank(value: Any) -> Any:
    return "" if value is None else value


def _chat_id_input(value: Any) -> Any:
    """FastGPT's `chatId` is the caller's own conversation id: a string; digits are taken."""
    if value is None:
        return ""
    return str(value) if type(value) is int else value


# A BeforeValidator runs first wherever it is listed; listing it last keeps the length limit
# on the string schema itself, so pydantic reports it as a string's length.

# An id of the caller's (customUid, responseChatItemId): a string, absent or null is "".
ExternalId = Annotated[
    str,
    Strict(),
    StringConstraints(max_length=MAX_EXTERNAL_ID_LENGTH),
    AfterValidator(text_checked),
    BeforeValidator(_none_is_blank),
]
# FastGPT's `chatId`: a string or a number, stripped; absent or null is "".
ChatId = Annotated[
    str,
    Strict(),
    StringConstraints(strip_whitespace=True, max_length=MAX_EXTERNAL_ID_LENGTH),
    AfterValidator(text_checked),
    BeforeValidator(_chat_id_input),
]


# --- messages ------------------------------------------------------------------------------------
def _content(value: Any, info: ValidationInfo) -> str:
    """A message's text: a string, or a list of `{"type": "text", "text": ...}` parts.
    OpenAI clients send `content: null` (or none) on assistant turns that only called tools."""
    if type(value) is str:
        return text_checked(value)
    if type(value) is list:
        texts = []
        for part in value:
            if type(part) is not dict or part.get("type") != "text":
                raise PydanticCustomError("content_part", "supports only text parts")
            text = part.get("text")
            if type(text) is not str:
                raise PydanticCustomError("content_part", "needs a string 'text' in each part")
            texts.append(text)
        return text_checked("".join(texts))
    if value is None and info.data.get("role") == "assistant":
        return ""
    raise PydanticCustomError("content_type", "must be a string or a list of text parts")


# The default lets `_content` see a missing content (allowed on assistant turns), so every
# message comes out with one.
_Content = NotRequired[
    Annotated[
        str,
        Field(default=None, validate_default=True),
        PlainValidator(_content, json_schema_input_type=str | list[dict[str, Any]] | None),
    ]
]


class ChatMessage(TypedDict):
    """An AIFlowy message."""

    role: Literal["system", "user", "assistant"]
    content: _Content


class OpenAIChatMessage(TypedDict):
    """An OpenAI message; `ChatCompletionRequest` turns `developer` into `system`."""

    role: Literal["system", "user", "assistant", "developer"]
    content: _Content


_FROZEN = ConfigDict(frozen=True)


# --- externalChat --------------------------------------------------------------------------------
class ExternalChatRequest(BaseModel):
    """`POST /api/v1/aiBot/externalChat` (and each WebSocket frame)."""

    model_config = _FROZEN

    bot_id: Id = Field(alias="botId")
    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    stream: Flag = False


def parse_external_chat(data: dict) -> ExternalChatRequest:
    return validated(ExternalChatRequest, data)


# --- OpenAI chat completions ---------------------------------------------------------------------
def _model_name(value: Any) -> str | None:
    """OpenAI's `model` names the bot: its name or its id (a string, or a number); blank is
    none."""
    if type(value) is int:
        value = str(value)
    elif type(value) is not str:
        raise PydanticCustomError("bot_name_type", "must be a string: a bot's name or id")
    name = value.strip()
    if len(name) > MAX_MODEL_LENGTH:
        raise PydanticCustomError(
            "bot_name_length", f"must be at most {MAX_MODEL_LENGTH} characters long"
        )
    return text_checked(name) or None


def _only_one(value: Any) -> int:
    if type(value) in (int, float) and value == 1:
        return 1
    raise PydanticCustomError("n", "must be 1: only one choice per request is supported")


def _stop(value: Any) -> list[str] | None:
    """OpenAI's `stop`: a string or a list of up to four strings."""
    if type(value) is str:
        return [text_checked(value)]
    if type(value) is list and len(value) <= 4 and all(type(item) is str for item in value):
        return [text_checked(item) for item in value] or None
    raise PydanticCustomError("stop", "must be a string or a list of up to 4 strings")


def _blank_is_none(value: str) -> str | None:
    return value or None


PositiveInt = Annotated[int, Strict(), Field(ge=1)]


class StreamOptions(BaseModel):
    model_config = _FROZEN

    include_usage: Flag = False


class ChatCompletionRequest(BaseModel):
    """`POST /v1/chat/completions`: OpenAI's fields we honour, and FastGPT's extensions.
    Fields we do not know are ignored, as OpenAI-compatible servers do; fields we know are
    checked and a wrong one is a 400 naming it."""

    model_config = _FROZEN

    # Before `messages`, whose check needs it.
    chat_id: ChatId = Field("", alias="chatId")
    messages: Annotated[list[OpenAIChatMessage], Field(min_length=1)]
    model: Annotated[str, PlainValidator(_model_name, json_schema_input_type=str | int)] | None = (
        None
    )
    n: Annotated[int, PlainValidator(_only_one, json_schema_input_type=Literal[1])] | None = None
    stream: Flag = False
    stream_options: StreamOptions | None = None
    max_completion_tokens: PositiveInt | None = None
    legacy_max_tokens: PositiveInt | None = Field(None, alias="max_tokens")
    temperature: Annotated[float, Strict(), between(0, 2)] | None = None
    top_p: Annotated[float, Strict(), between(0, 1)] | None = None
    stop: (
        Annotated[list[str], PlainValidator(_stop, json_schema_input_type=str | list[str])] | None
    ) = None
    user: Annotated[Text, AfterValidator(_blank_is_none)] | None = None
    variables: JsonObject = Field(default_factory=dict)
    custom_uid: ExternalId = Field("", alias="customUid")
    response_chat_item_id: ExternalId = Field("", alias="responseChatItemId")
    detail: Flag = False

    @field_validator("messages")
    @classmethod
    def _messages(cls, messages: list[dict], info: ValidationInfo) -> list[dict]:
        """Roles as sent upstream; with `chatId`, the last message is the new question."""
        for message in messages:
            message["role"] = OPENAI_ROLE_ALIASES.get(message["role"], message["role"])
        if info.data.get("chat_id") and messages[-1]["role"] != "user":
            raise PydanticCustomError(
                "chat_id_question",
                "must end with the new question (role 'user') when 'chatId' is given",
            )
        return messages

    @property
    def max_tokens(self) -> int | None:
        """`max_completion_tokens`, OpenAI's current name, over the older `max_tokens`."""
        if self.max_completion_tokens is not None:
            return self.max_completion_tokens
        return self.legacy_max_tokens

    @property
    def include_usage(self) -> bool:
        """`stream_options.include_usage` counts only when streaming."""
        return self.stream and self.stream_options is not None and self.stream_options.include_usage


def parse_chat_completion(data: dict) -> ChatCompletionRequest:
    return validated(ChatCompletionRequest, data)
