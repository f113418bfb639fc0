from django.contrib import admin
from django.db.models import Exists, OuterRef
from django.urls import reverse
from django.utils.html import format_html_join
from django.utils.translation import gettext_lazy as _

from aiflowy.admin_pagination import EstimatedCountPaginator
from chat.models import Conversation, Message


class MessageInline(admin.TabularInline):
    model = Message
    extra = 0
    can_delete = False
    fields = [
        "created_at",
        "role",
        "content",
        "status",
        "error_text",
        "prompt_tokens",
        "completion_tokens",
        "first_token_ms",
        "total_ms",
        "external_id",
        "quoted_items_display",
    ]
    readonly_fields = fields

    @admin.display(description=_("quoted knowledge"))
    def quoted_items_display(self, message: Message) -> str:
        """Links to the knowledge-base items quoted in the answer's prompt, with their score."""
        if not message.quoted_items:
            return "—"
        return format_html_join(
            ", ",
            '<a href="{}">#{}</a> ({})',
            (
                (
                    reverse("admin:knowledge_dataitem_change", args=[item["id"]]),
                    item["id"],
                    item["score"],
                )
                for item in message.quoted_items
            ),
        )

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    """Read-only: history is what happened."""

    list_display = [
        "id",
        "title_display",
        "bot",
        "api_key",
        "source",
        "external_chat_id",
        "custom_uid",
        "updated_at",
    ]
    list_filter = ["bot", "api_key", "source", ("created_at", admin.DateFieldListFilter)]
    list_select_related = ["bot", "api_key"]
    search_fields = ["title", "external_chat_id", "custom_uid"]
    date_hierarchy = "created_at"
    inlines = [MessageInline]
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    readonly_fields = [
        "bot",
        "api_key",
        "source",
        "external_chat_id",
        "custom_uid",
        "variables",
        "title",
        "created_at",
        "updated_at",
    ]

    @admin.display(description=_("title"), ordering="title")
    def title_display(self, conversation: Conversation) -> str:
        return (conversation.title or "—")[:80]

    def get_search_results(self, request, queryset, search_term):
        """Search titles and ids as usual, and message content through EXISTS (no join, no
        duplicate rows, no DISTINCT over a huge table)."""
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        if search_term:
            in_messages = Message.objects.filter(
                conversation=OuterRef("pk"), content__icontains=search_term
            )
            results = results | queryset.filter(Exists(in_messages))
        return results, may_have_duplicates

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
