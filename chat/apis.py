"""The history API for external callers: the conversations an API key had with a bot under
FastGPT `chatId`s, their messages, and deleting one. JSON, authenticated by the same keys as
the chat endpoints, and scoped to the calling key: another key's `chatId` does not exist here.

Not on the hot path, so these are DRF views behind Django's middleware. Errors use AIFlowy's
`{"errorCode", "message"}` (see `aiflowy.drf.exception_handler`).
"""

from __future__ import annotations

from django.db.models import QuerySet
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from aiflowy.errors import NotFound
from chat.models import Conversation
from chat.schemas import MAX_EXTERNAL_ID_LENGTH
from chat.selectors import (
    conversation_by_chat_id,
    conversation_messages,
    conversations_with_chat_id,
)
from chat.services import bot_for_history, conversation_delete

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


class PageSerializer(serializers.Serializer):
    offset = serializers.IntegerField(min_value=0, default=0)
    pageSize = serializers.IntegerField(
        min_value=1, max_value=MAX_PAGE_SIZE, default=DEFAULT_PAGE_SIZE
    )


def _page(queryset: QuerySet, *, offset: int, page_size: int) -> tuple[int, list]:
    return queryset.count(), list(queryset[offset : offset + page_size])


def _chat_not_found(chat_id: str) -> NotFound:
    return NotFound(f"No conversation with chatId '{chat_id}' for this key.", code="chat_not_found")


class ChatHistoriesApi(APIView):
    """`GET /api/v1/chat/histories?botId=&customUid=&offset=&pageSize=`: the key's
    conversations with the bot, most recently active first.
    `DELETE /api/v1/chat/histories?botId=&chatId=`: delete one conversation and its messages."""

    class FilterSerializer(PageSerializer):
        botId = serializers.IntegerField(min_value=1, required=False)
        customUid = serializers.CharField(max_length=MAX_EXTERNAL_ID_LENGTH, required=False)

    class DeleteSerializer(serializers.Serializer):
        botId = serializers.IntegerField(min_value=1, required=False)
        chatId = serializers.CharField(max_length=MAX_EXTERNAL_ID_LENGTH)

    class OutputSerializer(serializers.Serializer):
        chatId = serializers.CharField(source="external_chat_id")
        title = serializers.CharField()
        customUid = serializers.CharField(source="custom_uid")
        variables = serializers.JSONField()
        createTime = serializers.DateTimeField(source="created_at")
        updateTime = serializers.DateTimeField(source="updated_at")

    def get(self, request: Request) -> Response:
        query = self.FilterSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        bot_id = bot_for_history(request.auth, params.get("botId"))
        conversations = conversations_with_chat_id(
            bot_id=bot_id, api_key_id=request.auth.id, custom_uid=params.get("customUid", "")
        )
        total, page = _page(conversations, offset=params["offset"], page_size=params["pageSize"])
        return Response(
            {
                "botId": bot_id,
                "total": total,
                "offset": params["offset"],
                "pageSize": params["pageSize"],
                "list": self.OutputSerializer(page, many=True).data,
            }
        )

    def delete(self, request: Request) -> Response:
        query = self.DeleteSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        bot_id = bot_for_history(request.auth, params.get("botId"))
        deleted = conversation_delete(
            bot_id=bot_id, api_key_id=request.auth.id, external_chat_id=params["chatId"]
        )
        if not deleted:
            raise _chat_not_found(params["chatId"])
        return Response({"botId": bot_id, "chatId": params["chatId"], "deleted": True})


class ChatRecordsApi(APIView):
    """`GET /api/v1/chat/records?botId=&chatId=&offset=&pageSize=`: one conversation's
    messages, oldest first."""

    class FilterSerializer(PageSerializer):
        botId = serializers.IntegerField(min_value=1, required=False)
        chatId = serializers.CharField(max_length=MAX_EXTERNAL_ID_LENGTH)

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
        query = self.FilterSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        bot_id = bot_for_history(request.auth, params.get("botId"))
        conversation: Conversation | None = conversation_by_chat_id(
            bot_id=bot_id, api_key_id=request.auth.id, external_chat_id=params["chatId"]
        )
        if conversation is None:
            raise _chat_not_found(params["chatId"])
        total, page = _page(
            conversation_messages(conversation=conversation),
            offset=params["offset"],
            page_size=params["pageSize"],
        )
        return Response(
            {
                "botId": bot_id,
                "chatId": conversation.external_chat_id,
                "total": total,
                "offset": params["offset"],
                "pageSize": params["pageSize"],
                "list": self.OutputSerializer(page, many=True).data,
            }
        )
