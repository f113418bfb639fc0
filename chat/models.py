"""Chat history: one conversation per external chat (or per stateless call), and its messages."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class Conversation(models.Model):
    class Source(models.TextChoices):
        EXTERNAL_CHAT = "externalChat", "externalChat"
        OPENAI = "openai", _("OpenAI-compatible")
        SHARE = "share", _("share link")
        PLAYGROUND = "playground", _("playground")

    bot = models.ForeignKey(
        "bots.Bot", on_delete=models.CASCADE, related_name="conversations", verbose_name=_("bot")
    )
    api_key = models.ForeignKey(
        "apikeys.ApiKey",
        null=True,
        on_delete=models.SET_NULL,
        related_name="conversations",
        verbose_name=_("API key"),
    )
    external_chat_id = models.CharField(_("chat id"), max_length=250, blank=True)
    custom_uid = models.CharField(_("custom uid"), max_length=250, blank=True)
    source = models.CharField(_("source"), max_length=20, choices=Source.choices)
    variables = models.JSONField(_("variables"), default=dict, blank=True)
    title = models.CharField(_("title"), max_length=200, blank=True)
    created_at = models.DateTimeField(_("created"), db_index=True)
    updated_at = models.DateTimeField(_("updated"))

    class Meta:
        verbose_name = _("conversation")
        verbose_name_plural = _("conversations")
        ordering = ["-updated_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["bot", "api_key", "external_chat_id"],
                condition=~models.Q(external_chat_id=""),
                name="chat_unique_external_chat_id_per_bot_and_key",
            )
        ]
        indexes = [models.Index(fields=["bot", "api_key", "-updated_at"])]

    def __str__(self) -> str:
        return self.title or self.external_chat_id or f"#{self.pk}"


class Message(models.Model):
    class Role(models.TextChoices):
        SYSTEM = "system", _("system")
        USER = "user", _("user")
        ASSISTANT = "assistant", _("assistant")
        TOOL = "tool", _("tool")

    class Status(models.TextChoices):
        COMPLETE = "complete", _("complete")
        INTERRUPTED = "interrupted", _("interrupted")
        ERROR = "error", _("error")

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages"
    )
    external_id = models.CharField(_("item id"), max_length=250, blank=True)
    role = models.CharField(_("role"), max_length=20, choices=Role.choices)
    content = models.TextField(_("content"), blank=True)
    # An assistant turn's tool calls, as OpenAI sends them (`[{id, type, function}]`).
    tool_calls = models.JSONField(_("tool calls"), null=True, blank=True)
    # A tool result's answer to which call.
    tool_call_id = models.CharField(_("tool call id"), max_length=250, blank=True)
    status = models.CharField(
        _("status"), max_length=20, choices=Status.choices, default=Status.COMPLETE
    )
    error_text = models.TextField(_("error"), blank=True)
    prompt_tokens = models.PositiveIntegerField(_("prompt tokens"), null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(_("completion tokens"), null=True, blank=True)
    first_token_ms = models.PositiveIntegerField(_("first token (ms)"), null=True, blank=True)
    total_ms = models.PositiveIntegerField(_("total (ms)"), null=True, blank=True)
    # The X-Request-Id of the request that produced it (its log lines carry the same id).
    request_id = models.CharField(_("request id"), max_length=64, blank=True)
    quoted_items = models.JSONField(
        _("quoted knowledge"),
        default=list,
        blank=True,
        help_text=_("The knowledge-base items quoted in the prompt: id, knowledge base, score."),
    )
    created_at = models.DateTimeField(_("created"))

    class Meta:
        verbose_name = _("message")
        verbose_name_plural = _("messages")
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["conversation", "created_at"])]

    def __str__(self) -> str:
        return f"{self.role}: {self.content[:60]}"
