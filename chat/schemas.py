"""The chat request bodies as pydantic models: `parse_external_chat` and
`parse_chat_completion` return a validated, frozen request or raise a `BadRequest` naming the
field in the wire's notation (see `aiflowy.validation`).

The returned objects are the models themselves (no second copy into dataclasses: that would
cost the hot path a construction per request). Messages come out as plain dicts, as the
services and the upstream client use them: AIFlowy's as `{"role", "content": str}`, OpenAI's
with the fields OpenAI defines (content a string, or a list when it has media parts; tool
calls; the id a tool result answers).
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

from aiflowy.errors import BadRequest
from aiflowy.validation import (
    Flag,
    Id,
    JsonObject,
    Text,
    between,
    json_checked,
    text_checked,
    validated,
)

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


# Content parts other than text, and the object each carries (checked to be an object).
MEDIA_PARTS = {"image_url": "image_url", "input_audio": "input_audio", "file": "file"}


def _openai_part(index: int, part: Any, role: str | None) -> None:
    if type(part) is not dict:
        raise PydanticCustomError("content_part", f"part {index} must be an object")
    kind = part.get("type")
    if kind == "text" or (kind == "refusal" and role == "assistant"):
        if type(part.get(kind)) is not str:
            raise PydanticCustomError(
                "content_part", f"part {index} ({kind}) needs a string '{kind}'"
            )
        return
    if kind not in MEDIA_PARTS:
        raise PydanticCustomError(
            "content_part",
            f"part {index} has an unknown type; one of text, image_url, input_audio, file",
        )
    member = part.get(MEDIA_PARTS[kind])
    if type(member) is not dict:
        raise PydanticCustomError("content_part", f"part {index} ({kind}) needs a '{kind}' object")
    if kind == "image_url" and type(member.get("url")) is not str:
        raise PydanticCustomError("content_part", f"part {index} (image_url) needs a string 'url'")
    if kind == "input_audio" and not (
        type(member.get("data")) is str and type(member.get("format")) is str
    ):
        raise PydanticCustomError(
            "content_part", f"part {index} (input_audio) needs string 'data' and 'format'"
        )


def _openai_content(value: Any, info: ValidationInfo) -> str | list | None:
    """An OpenAI message's content: a string; a list of parts, text only (joined into one
    string, as before) or with image, audio or file parts (kept as sent, for the provider);
    null on an assistant turn (one that only called tools)."""
    if type(value) is str:
        return text_checked(value)
    role = info.data.get("role")
    if type(value) is list:
        if all(type(part) is dict and part.get("type") == "text" for part in value):
            return _content(value, info)
        for index, part in enumerate(value):
            _openai_part(index, part, role)
        return json_checked(value)
    if value is None and role == "assistant":
        return None
    raise PydanticCustomError("content_type", "must be a string or a list of content parts")


class ToolCallFunction(TypedDict):
    name: Text
    arguments: Text


class ToolCall(TypedDict):
    """A tool call of an earlier assistant turn, as OpenAI clients send it back."""

    id: Text
    type: Literal["function"]
    function: ToolCallFunction


class OpenAIChatMessage(TypedDict):
    """An OpenAI message of any role (`developer` becomes `system`; `function` is the old
    form of `tool`); fields OpenAI does not define are dropped."""

    role: Literal["system", "user", "assistant", "developer", "tool", "function"]
    content: NotRequired[
        Annotated[
            str | list | None,
            Field(default=None, validate_default=True),
            PlainValidator(_openai_content),
        ]
    ]
    name: NotRequired[Text]
    tool_calls: NotRequired[Annotated[list[ToolCall], Field(max_length=128)]]
    tool_call_id: NotRequired[Text]
    function_call: NotRequired[JsonObject]
    refusal: NotRequired[Text | None]
    audio: NotRequired[JsonObject | None]


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


def _choices(value: Any) -> int:
    if type(value) in (int, float) and value == int(value) and 1 <= value <= 128:
        return int(value)
    raise PydanticCustomError("n", "must be an integer between 1 and 128")


def _tools(value: Any) -> list:
    """OpenAI's `tools`: up to 128 objects with a `type`; a function tool names its function."""
    if type(value) is not list or len(value) > 128:
        raise PydanticCustomError("tools", "must be a list of up to 128 tools")
    for index, tool in enumerate(value):
        if type(tool) is not dict or type(tool.get("type")) is not str:
            raise PydanticCustomError("tools", f"item {index} must be an object with a 'type'")
        if tool["type"] == "function":
            function = tool.get("function")
            if type(function) is not dict or type(function.get("name")) is not str:
                raise PydanticCustomError(
                    "tools", f"item {index} needs a 'function' object with a string 'name'"
                )
    return json_checked(value)


def _functions(value: Any) -> list:
    """The old `functions`: a list of objects with a `name`."""
    if type(value) is not list or not all(
        type(f) is dict and type(f.get("name")) is str for f in value
    ):
        raise PydanticCustomError("functions", "must be a list of objects with a string 'name'")
    return json_checked(value)


def _choice_of(*names: str):
    """`tool_choice` / `function_call`: one of `names`, or an object saying which tool."""

    def check(value: Any) -> str | dict:
        if type(value) is str and value in names:
            return value
        if type(value) is dict:
            return json_checked(value)
        raise PydanticCustomError("choice", f"must be one of {', '.join(names)}, or an object")

    return PlainValidator(check)


def _response_format(value: Any) -> dict:
    """`text`, `json_object`, or `json_schema` with a named schema."""
    if type(value) is not dict or value.get("type") not in ("text", "json_object", "json_schema"):
        raise PydanticCustomError(
            "response_format", "must be an object whose 'type' is text, json_object or json_schema"
        )
    if value["type"] == "json_schema":
        schema = value.get("json_schema")
        if type(schema) is not dict or type(schema.get("name")) is not str:
            raise PydanticCustomError(
                "response_format", "needs a 'json_schema' object with a string 'name'"
            )
    return json_checked(value)


def _logit_bias(value: Any) -> dict:
    if type(value) is dict and all(
        type(v) in (int, float) and -100 <= v <= 100 for v in value.values()
    ):
        return json_checked(value)
    raise PydanticCustomError("logit_bias", "must map token ids to numbers between -100 and 100")


def _metadata(value: Any) -> dict:
    if type(value) is dict and len(value) <= 16 and all(type(v) is str for v in value.values()):
        return json_checked(value)
    raise PydanticCustomError("metadata", "must be an object of up to 16 string values")


def _modalities(value: Any) -> list:
    if type(value) is list and value and all(v in ("text", "audio") for v in value):
        return value
    raise PydanticCustomError("modalities", "must be a list of 'text' and 'audio'")


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
    n: Annotated[int, PlainValidator(_choices, json_schema_input_type=int)] | None = None
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
    # OpenAI's other request fields: validated here, sent to the provider as they came.
    tools: Annotated[list, PlainValidator(_tools)] | None = None
    tool_choice: Annotated[str | dict, _choice_of("none", "auto", "required")] | None = None
    parallel_tool_calls: Annotated[bool, Strict()] | None = None
    functions: Annotated[list, PlainValidator(_functions)] | None = None
    function_call: Annotated[str | dict, _choice_of("none", "auto")] | None = None
    response_format: Annotated[dict, PlainValidator(_response_format)] | None = None
    seed: Annotated[int, Strict()] | None = None
    logprobs: Annotated[bool, Strict()] | None = None
    top_logprobs: Annotated[int, Strict(), Field(ge=0, le=20)] | None = None
    presence_penalty: Annotated[float, Strict(), between(-2, 2)] | None = None
    frequency_penalty: Annotated[float, Strict(), between(-2, 2)] | None = None
    logit_bias: Annotated[dict, PlainValidator(_logit_bias)] | None = None
    metadata: Annotated[dict, PlainValidator(_metadata)] | None = None
    store: Annotated[bool, Strict()] | None = None
    reasoning_effort: Text | None = None
    verbosity: Text | None = None
    service_tier: Text | None = None
    modalities: Annotated[list, PlainValidator(_modalities)] | None = None
    audio: JsonObject | None = None
    prediction: JsonObject | None = None
    web_search_options: JsonObject | None = None
    prompt_cache_key: Text | None = None
    safety_identifier: Text | None = None

    @field_validator("messages")
    @classmethod
    def _messages(cls, messages: list[dict], info: ValidationInfo) -> list[dict]:
        """Roles as sent upstream; a tool result names its call; with `chatId`, the last
        message is the new input (a question, or tool results)."""
        for index, message in enumerate(messages):
            role = message["role"] = OPENAI_ROLE_ALIASES.get(message["role"], message["role"])
            if role in ("tool", "function"):
                key = "tool_call_id" if role == "tool" else "name"
                if not message.get(key):
                    # Raised as is (not a pydantic error) to name the field inside the message.
                    param = f"messages[{index}].{key}"
                    raise BadRequest(f"'{param}' is required on a {role} message.", param=param)
                if message.get("content") is None:
                    param = f"messages[{index}].content"
                    raise BadRequest(f"'{param}' is required on a {role} message.", param=param)
        if info.data.get("chat_id") and messages[-1]["role"] not in ("user", "tool", "function"):
            raise PydanticCustomError(
                "chat_id_question",
                "must end with the new question (role 'user') or tool results when 'chatId' "
                "is given",
            )
        return messages

    @property
    def passthrough(self) -> dict[str, Any]:
        """The fields of `PASS_THROUGH_FIELDS` the caller sent (not null)."""
        sent = self.model_fields_set & PASS_THROUGH_FIELDS
        if not sent:
            return {}
        values = {name: getattr(self, name) for name in sent}
        return {name: value for name, value in values.items() if value is not None}

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


# Which of OpenAI's request fields each per-bot switch governs (see `chat.services`).
TOOL_FIELDS = ("tools", "tool_choice", "parallel_tool_calls", "functions", "function_call")
MEDIA_FIELDS = ("modalities", "audio")
GENERATION_FIELDS = (
    "seed",
    "logprobs",
    "top_logprobs",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "n",
    "reasoning_effort",
    "verbosity",
    "service_tier",
)
PASS_THROUGH_FIELDS = frozenset(
    (
        *TOOL_FIELDS,
        *MEDIA_FIELDS,
        *GENERATION_FIELDS,
        "response_format",
        "metadata",
        "store",
        "prediction",
        "web_search_options",
        "prompt_cache_key",
        "safety_identifier",
    )
)


def parse_chat_completion(data: dict) -> ChatCompletionRequest:
    return validated(ChatCompletionRequest, data)
