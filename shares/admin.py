from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from aiflowy.admin_pagination import EstimatedCountPaginator
from shares.models import ShareConversation, ShareLink
from shares.selectors import share_link_cache


def share_page_path(link: ShareLink) -> str:
    return f"{reverse('shares:share')}?shareId={link.share_id}"


@admin.register(ShareLink)
class ShareLinkAdmin(admin.ModelAdmin):
    """Share links with their usage (counted on the link, so this list never aggregates the
    message table; only the distinct users are counted, from the link's own conversations)."""

    list_display = [
        "name",
        "bot",
        "enabled",
        "expires_at",
        "link_display",
        "questions_count",
        "tokens_used",
        "users_count",
        "last_used_at",
        "finish_hook_failures",
        "conversations_link",
    ]
    list_filter = ["enabled", "bot"]
    list_select_related = ["bot"]
    search_fields = ["name", "share_id"]
    actions = ["disable_links", "enable_links"]
    fieldsets = [
        (None, {"fields": ["name", "bot", "enabled", "expires_at"]}),
        (_("Auth server"), {"fields": ["auth_host", "auth_allow_private_host"]}),
        (
            _("Limits"),
            {"fields": ["questions_per_minute_per_user", "questions_per_minute", "token_budget"]},
        ),
        (_("Page"), {"fields": ["show_quotes", "show_detail"]}),
    ]
    usage_fieldset = (
        _("Usage"),
        {
            "fields": [
                "link_display",
                "questions_count",
                "tokens_used",
                "users_count",
                "last_used_at",
                "finish_hook_failures",
                "conversations_link",
            ]
        },
    )
    readonly_fields = [
        "link_display",
        "questions_count",
        "tokens_used",
        "users_count",
        "last_used_at",
        "finish_hook_failures",
        "conversations_link",
    ]

    class Media:
        js = ["shares/admin_copy_link.js"]

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return self.fieldsets
        return [self.usage_fieldset, *self.fieldsets]

    def get_queryset(self, request) -> QuerySet[ShareLink]:
        return (
            super()
            .get_queryset(request)
            .annotate(users=Count("conversations__user_key", distinct=True))
        )

    @admin.display(description=_("link"))
    def link_display(self, link: ShareLink) -> str:
        path = share_page_path(link)
        return format_html(
            '<a href="{}" target="_blank" rel="noopener" class="share-link">{}</a> '
            '<button type="button" class="button copy-share-link" data-path="{}">{}</button>',
            path,
            _("open"),
            path,
            _("copy link"),
        )

    @admin.display(description=_("users"), ordering="users")
    def users_count(self, link: ShareLink) -> int:
        users = getattr(link, "users", None)
        if users is None:
            users = link.conversations.values("user_key").distinct().count()
        return users

    @admin.display(description=_("conversations"))
    def conversations_link(self, link: ShareLink) -> str:
        url = reverse("admin:shares_shareconversation_changelist")
        return format_html(
            '<a href="{}?share_link__id__exact={}">{}</a>', url, link.pk, _("conversations")
        )

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        share_link_cache.invalidate()

    @admin.action(description=_("Disable the selected share links"))
    def disable_links(self, request, queryset) -> None:
        self._set_enabled(request, queryset, enabled=False)

    @admin.action(description=_("Enable the selected share links"))
    def enable_links(self, request, queryset) -> None:
        self._set_enabled(request, queryset, enabled=True)

    def _set_enabled(self, request, queryset, *, enabled: bool) -> None:
        count = ShareLink.objects.filter(pk__in=queryset.values("pk")).update(enabled=enabled)
        share_link_cache.invalidate()
        text = (
            ngettext("%(count)d share link enabled.", "%(count)d share links enabled.", count)
            if enabled
            else ngettext(
                "%(count)d share link disabled.", "%(count)d share links disabled.", count
            )
        )
        self.message_user(request, text % {"count": count}, messages.SUCCESS)


@admin.register(ShareConversation)
class ShareConversationAdmin(admin.ModelAdmin):
    """The conversations share links produced (read-only; each opens its chat history)."""

    list_display = ["created_at", "share_link", "user_key", "conversation_link", "updated_at"]
    list_filter = ["share_link", ("created_at", admin.DateFieldListFilter)]
    list_select_related = ["share_link", "conversation"]
    search_fields = ["user_key", "conversation__title", "conversation__external_chat_id"]
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    readonly_fields = ["share_link", "conversation_link", "user_key", "created_at"]
    fields = readonly_fields

    @admin.display(description=_("conversation"))
    def conversation_link(self, share: ShareConversation) -> str:
        conversation = share.conversation
        url = reverse("admin:chat_conversation_change", args=[conversation.pk])
        return format_html('<a href="{}">{}</a>', url, conversation.title or f"#{conversation.pk}")

    @admin.display(description=_("updated"), ordering="conversation__updated_at")
    def updated_at(self, share: ShareConversation):
        return share.conversation.updated_at

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
