"""API keys for external callers: stored as SHA-256 hashes, shown in full only once."""

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class ApiKey(models.Model):
    name = models.CharField(_("name"), max_length=100)
    prefix = models.CharField(_("prefix"), max_length=16, editable=False)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    enabled = models.BooleanField(_("enabled"), default=True)
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)
    allowed_bots = models.ManyToManyField(
        "bots.Bot",
        blank=True,
        related_name="+",
        verbose_name=_("allowed bots"),
        help_text=_("Empty: every bot."),
    )
    default_bot = models.ForeignKey(
        "bots.Bot",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("default bot"),
        help_text=_(
            "Answers OpenAI-compatible requests that name no model. Empty: the first allowed "
            "bot picked."
        ),
    )
    allowed_workflows = models.ManyToManyField(
        "workflows.Workflow",
        blank=True,
        related_name="+",
        verbose_name=_("allowed workflows"),
        help_text=_("Empty: every workflow."),
    )
    allowed_knowledge_bases = models.ManyToManyField(
        "knowledge.KnowledgeBase",
        blank=True,
        related_name="+",
        verbose_name=_("allowed knowledge bases"),
        help_text=_("Empty: every knowledge base, unless the key is limited to bots or workflows."),
    )
    rate_limit_per_minute = models.PositiveIntegerField(
        _("rate limit (requests per minute)"), default=0, help_text=_("0: no limit.")
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        editable=False,
        related_name="+",
        verbose_name=_("created by"),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("API key")
        verbose_name_plural = _("API keys")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()
