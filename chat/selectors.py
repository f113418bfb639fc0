"""Reading chat history: a conversation's context for the model, and the history API's pages.

Every read is scoped to one bot and one API key: a `chatId` names a conversation only within
that pair, so two keys using the same `chatId` never see each other's messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import Q, QuerySet

from chat.models import Conversation, Message


@dataclass(frozen=True, slots=True)
class ConversationContext:
    """What a `chatId` turn needs from the stored conversation (empty for a new one)."""

    history: list[dict] = field(default_factory=list)
    variables: dict = field(default_factory=dict)


def conversation_context_get(
    *, bot_id: int, api_key_id: int | None, external_chat_id: str, history_window: int
) -> ConversationContext:
    """The last `history_window` messages with text or tool calls (oldest first, as OpenAI
    messages: an assistant turn with its `tool_calls`, a tool result with its `tool_call_id`)
    and the stored variables. Two queries; a new chat id costs one."""
    conversation = (
        Conversation.objects.filter(
            bot_id=bot_id, api_key_id=api_key_id, external_chat_id=external_chat_id
        )
        .only("id", "variables")
        .first()
    )
    if conversation is None:
        return ConversationContext()
    history: list[dict] = []
    if history_window > 0:
        rows = (
            Message.objects.filter(conversation_id=conversation.pk)
            .exclude(Q(content="", tool_calls__isnull=True) & ~Q(role=Message.Role.TOOL))
            .order_by("-created_at", "-id")
            .values_list("role", "content", "tool_calls", "tool_call_id")[:history_window]
        )
        history = [_history_message(*row) for row in reversed(rows)]
        # A window that starts inside a tool exchange would send results without their call,
        # which providers refuse: those are left out.
        while history and history[0]["role"] == Message.Role.TOOL:
            history.pop(0)
    return ConversationContext(history=history, variables=conversation.variables or {})


def _history_message(role: str, content: str, tool_calls: list | None, tool_call_id: str) -> dict:
    if tool_calls:
        return {"role": role, "content": content or None, "tool_calls": tool_calls}
    if role == Message.Role.TOOL:
        return {"role": role, "tool_call_id": tool_call_id, "content": content}
    return {"role": role, "content": content}


def conversations_with_chat_id(
    *, bot_id: int, api_key_id: int, custom_uid: str = ""
) -> QuerySet[Conversation]:
    """The key's conversations with this bot that have a `chatId`, most recent first
    (stateless calls are recorded too, but cannot be continued or read back by id)."""
    conversations = Conversation.objects.filter(bot_id=bot_id, api_key_id=api_key_id).exclude(
        external_chat_id=""
    )
    if custom_uid:
        conversations = conversations.filter(custom_uid=custom_uid)
    return conversations.order_by("-updated_at", "-id")


def conversation_by_chat_id(
    *, bot_id: int, api_key_id: int, external_chat_id: str
) -> Conversation | None:
    if not external_chat_id:
        return None
    return Conversation.objects.filter(
        bot_id=bot_id, api_key_id=api_key_id, external_chat_id=external_chat_id
    ).first()


def conversation_messages(*, conversation: Conversation) -> QuerySet[Message]:
    """A conversation's messages in the order they were said."""
    return Message.objects.filter(conversation_id=conversation.pk).order_by("created_at", "id")
