"""Share links: a bot handed to people who hold no API key, through a public chat page.

A link is reached only by its random `share_id`. Usage counters live on the link itself
(updated with one `UPDATE … SET x = x + n` after each answer), so the admin's list and the
token budget never aggregate the message table. Conversations a link produced are ordinary
chat history rows (`chat.Conversation`, source "share"); `ShareConversation` ties each one to
its link and to the user who had it.
"""

from __future__ import annotations

import secrets

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


def new_share_id() -> str:
    """128 bits of randomness, URL-safe: a link cannot be guessed or enumerated."""
    return secrets.token_urlsafe(16)


class ShareLink(models.Model):
    bot = models.ForeignKey(
        "bots.Bot", on_delete=models.CASCADE, related_name="share_links", verbose_name=_("bot")
    )
    name = models.CharField(_("name"), max_length=100)
    share_id = models.CharField(
        _("share id"), max_length=64, unique=True, default=new_share_id, editable=False
    )
    enabled = models.BooleanField(_("enabled"), default=True)
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)
    auth_host = models.URLField(
        _("auth server"),
        blank=True,
        help_text=_(
            "Optional. Your server's base URL: it receives POST {host}/shareAuth/init, "
            "/shareAuth/start and /shareAuth/finish (FastGPT's share-link auth)."
        ),
    )
    auth_allow_private_host = models.BooleanField(
        _("allow a private auth server"),
        default=False,
        help_text=_(
            "Allow the auth server to be on a private or loopback address (your intranet). "
            "Public addresses only when off."
        ),
    )
    questions_per_minute_per_user = models.PositiveIntegerField(
        _("questions per minute per user"), default=20, help_text=_("0 means no limit.")
    )
    questions_per_minute = models.PositiveIntegerField(
        _("questions per minute for the whole link"), default=0, help_text=_("0 means no limit.")
    )
    token_budget = models.PositiveBigIntegerField(
        _("token budget"),
        default=0,
        help_text=_("Total tokens this link may spend; 0 means no limit."),
    )
    show_quotes = models.BooleanField(_("show quotes"), default=False)
    show_detail = models.BooleanField(
        _("show detail"),
        default=False,
        help_text=_("Show each answer's detail (model, tokens, timings) on the page."),
    )
    questions_count = models.PositiveBigIntegerField(_("questions"), default=0, editable=False)
    tokens_used = models.PositiveBigIntegerField(_("tokens used"), default=0, editable=False)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True, editable=False)
    finish_hook_failures = models.PositiveIntegerField(
        _("finish hook failures"), default=0, editable=False
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("share link")
        verbose_name_plural = _("share links")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name


class ShareConversation(models.Model):
    """One conversation held through a share link, and whose it is (`user_key`: the auth
    server's uid, the authToken, or the anonymous cookie's id, each with its own prefix)."""

    share_link = models.ForeignKey(
        ShareLink,
        on_delete=models.CASCADE,
        related_name="conversations",
        verbose_name=_("share link"),
    )
    conversation = models.OneToOneField(
        "chat.Conversation",
        on_delete=models.CASCADE,
        related_name="share",
        verbose_name=_("conversation"),
    )
    user_key = models.CharField(_("user"), max_length=300)
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        verbose_name = _("share-link conversation")
        verbose_name_plural = _("share-link conversations")
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["share_link", "user_key", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.share_link} · {self.user_key}"
