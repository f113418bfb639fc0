"""The chat page's request bodies as pydantic models (`aiflowy.validation`): a typed request,
or a `BadRequest` naming the field. The OpenAPI document is generated from these models
(`shares/openapi.py`)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from aiflowy.validation import Text

_FROZEN = ConfigDict(frozen=True, populate_by_name=True)

ShareId = Annotated[Text, Field(min_length=1, max_length=64)]
AuthToken = Annotated[Text, Field(max_length=1000)]
ChatId = Annotated[Text, Field(max_length=250)]


class ShareOpenRequest(BaseModel):
    """A share link's page opens: `shareId`, and the visitor's `authToken` when the link
    authenticates its users (else the signed visitor cookie the page set identifies them)."""

    model_config = _FROZEN

    share_id: ShareId = Field(alias="shareId")
    auth_token: AuthToken = Field("", alias="authToken")


class ShareMessagesRequest(ShareOpenRequest):
    """One of the visitor's earlier chats, to show again."""

    chat_id: Annotated[ChatId, Field(min_length=1)] = Field(alias="chatId")


class ShareAnswerRequest(ShareOpenRequest):
    """One question (at most `AIFLOWY_SHARE_MAX_QUESTION_CHARS` characters; the page says
    what is wrong with it in the visitor's language), in a chat (`chatId`) or a new one."""

    question: str = ""
    chat_id: ChatId = Field("", alias="chatId")
