"""The history API for external callers: the conversations an API key had with a bot under
FastGPT `chatId`s, their messages, and deleting one. JSON, authenticated by the same keys as
the chat endpoints, and scoped to the calling key: another key's `chatId` does not exist here.

Not on the hot path, so these are DRF views behind Django's middleware. Query parameters are
pydantic models validated like every request body (`aiflowy.validation.validated`); the
answers are shaped by DRF output serializers, one per list item. Errors use AIFlowy's
`{"errorCode", "message", "param"}` (see `aiflowy.drf.exception_handler`).
"""

from __future__ import annotations

from typing import Annotated

from django.db.models import QuerySet
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from aiflowy.drf import ApiView
from aiflowy.errors import NotFound
from aiflowy.validation import MAX_BIGINT, Id, integer_between, validated
from chat.access import bot_for_history
from chat.models import Conversation
from chat.schemas import ChatId, ExternalId
from chat.selectors import (
    conversation_by_chat_id,
    conversation_messages,
    conversations_with_chat_id,
)
from chat.services import conversation_delete

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


def _not_blank(value: str) -> str:
    if not value:
        raise PydanticCustomError("blank", "must not be blank")
    return value


Offset = Annotated[int, integer_between(0, MAX_BIGINT)]
PageSize = Annotated[int, integer_between(1, MAX_PAGE_SIZE)]
# A conversation's chatId: never blank here (stateless conversations have none).
RequiredChatId = Annotated[ChatId, AfterValidator(_not_blank)]


class HistoriesQuery(BaseModel):
    """`GET /api/v1/chat/histories`."""

    model_config = ConfigDict(frozen=True)

    bot_id: Id | None = Field(None, alias="botId")
    custom_uid: ExternalId = Field("", alias="customUid")
    offset: Offset = 0
    page_size: PageSize = Field(DEFAULT_PAGE_SIZE, alias="pageSize")


class HistoryDeleteQuery(BaseModel):
    """`DELETE /api/v1/chat/histories`."""

    model_config = ConfigDict(frozen=True)

    bot_id: Id | None = Field(None, alias="botId")
    chat_id: RequiredChatId = Field(alias="chatId")


class RecordsQuery(BaseModel):
    """`GET /api/v1/chat/records`."""

    model_config = ConfigDict(frozen=True)

    bot_id: Id | None = Field(None, alias="botId")
    chat_id: RequiredChatId = Field(alias="chatId")
    offset: Offset = 0
    page_size: PageSize = Field(DEFAULT_PAGE_SIZE, alias="pageSize")


def query_params(request: Request) -> dict[str, str]:
    """The query parameters (the last value of each), a blank one taken as absent."""
    return {name: value for name, value in request.query_params.items() if value != ""}


def _page(queryset: QuerySet, *, offset: int, page_size: int) -> tuple[int, list]:
    return queryset.count(), list(queryset[offset : offset + page_size])


def _chat_not_found(chat_id: str) -> NotFound:
    return NotFound(f"No conversation with chatId '{chat_id}' for this key.", code="chat_not_found")


class ChatHistoriesApi(ApiView):
    """`GET /api/v1/chat/histories?botId=&customUid=&offset=&pageSize=`: the key's
    conversations with the bot, most recently active first.
    `DELETE /api/v1/chat/histories?botId=&chatId=`: delete one conversation and its messages."""

    class OutputSerializer(serializers.Serializer):
        chatId = serializers.CharField(source="external_chat_id")
        title = serializers.CharField()
        customUid = serializers.CharField(source="custom_uid")
        variables = serializers.JSONField()
        createTime = serializers.DateTimeField(source="created_at")
        updateTime = serializers.DateTimeField(source="updated_at")

    def get(self, request: Request) -> Response:
        query = validated(HistoriesQuery, query_params(request))
        bot_id = bot_for_history(request.auth, query.bot_id)
        conversations = conversations_with_chat_id(
            bot_id=bot_id, api_key_id=request.auth.id, custom_uid=query.custom_uid
        )
        total, page = _page(conversations, offset=query.offset, page_size=query.page_size)
        return Response(
            {
                "botId": bot_id,
                "total": total,
                "offset": query.offset,
                "pageSize": query.page_size,
                "list": self.OutputSerializer(page, many=True).data,
            }
        )

    def delete(self, request: Request) -> Response:
        query = validated(HistoryDeleteQuery, query_params(request))
        bot_id = bot_for_history(request.auth, query.bot_id)
        deleted = conversation_delete(
            bot_id=bot_id, api_key_id=request.auth.id, external_chat_id=query.chat_id
        )
        if not deleted:
            raise _chat_not_found(query.chat_id)
        return Response({"botId": bot_id, "chatId": query.chat_id, "deleted": True})


class ChatRecordsApi(ApiView):
    """`GET /api/v1/chat/records?botId=&chatId=&offset=&pageSize=`: one conversation's
    messages, oldest first."""

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        dataId = serializers.SerializerMethodField()
        role = serializers.CharField()
        content = serializers.CharField()
        status = serializers.CharField()
        createTime = serializers.DateTimeField(source="created_at")

        def get_dataId(self, message) -> str | None:
            """The caller's `responseChatItemId` for this answer, if it gave one."""
            return message.external_id or None

    def get(self, request: Request) -> Response:
        query = validated(RecordsQuery, query_params(request))
        bot_id = bot_for_history(request.auth, query.bot_id)
        conversation: Conversation | None = conversation_by_chat_id(
            bot_id=bot_id, api_key_id=request.auth.id, external_chat_id=query.chat_id
        )
        if conversation is None:
            raise _chat_not_found(query.chat_id)
        total, page = _page(
            conversation_messages(conversation=conversation),
            offset=query.offset,
            page_size=query.page_size,
        )
        return Response(
            {
                "botId": bot_id,
                "chatId": conversation.external_chat_id,
                "total": total,
                "offset": query.offset,
                "pageSize": query.page_size,
                "list": self.OutputSerializer(page, many=True).data,
            }
        )
