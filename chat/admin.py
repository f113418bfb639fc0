from datetime import date, timedelta

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import Exists, OuterRef
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html_join
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from aiflowy.admin_charts import bar_chart_svg
from aiflowy.admin_pagination import EstimatedCountPaginator
from apikeys.models import ApiKey
from bots.models import Bot
from chat.models import Conversation, Message
from chat.usage import usage_by_day

USAGE_MAX_DAYS = 366


class MessageInline(admin.TabularInline):
    model = Message
    extra = 0
    can_delete = False
    fields = [
        "created_at",
        "role",
        "content",
        "tool_calls",
        "tool_call_id",
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

    def get_urls(self):
        usage = self.admin_site.admin_view(self.usage_view)
        return [path("usage/", usage, name="chat_usage"), *super().get_urls()]

    def usage_view(self, request):
        """Requests, errors, tokens and latency per day of one bot or key (or all), as SVG
        charts and a table, from the stored exchanges."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        today = timezone.localdate()
        last_day = _date_param(request.GET.get("last"), today)
        first_day = _date_param(request.GET.get("first"), last_day - timedelta(days=29))
        first_day = max(min(first_day, last_day), last_day - timedelta(days=USAGE_MAX_DAYS - 1))
        bot_id = _int_param(request.GET.get("bot"))
        key_id = _int_param(request.GET.get("key"))
        days = usage_by_day(
            bot_id=bot_id, api_key_id=key_id, first_day=first_day, last_day=last_day
        )
        labels = [d.day.isoformat() for d in days]
        charts = [
            (gettext("Requests"), [d.requests for d in days], ""),
            (gettext("Errors"), [d.errors for d in days], ""),
            (gettext("Prompt tokens"), [d.prompt_tokens for d in days], ""),
            (gettext("Completion tokens"), [d.completion_tokens for d in days], ""),
            (gettext("Average latency (ms)"), [d.avg_latency_ms for d in days], "ms"),
        ]
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": gettext("Usage"),
            "bots": Bot.objects.order_by("name").values_list("id", "name"),
            "keys": ApiKey.objects.order_by("name").values_list("id", "name", "prefix"),
            "bot_id": bot_id,
            "key_id": key_id,
            "first_day": first_day,
            "last_day": last_day,
            "charts": [
                (title, bar_chart_svg(labels, values, title=title, unit=unit))
                for title, values, unit in charts
            ],
            "days": days,
            "totals": {
                "requests": sum(d.requests for d in days),
                "errors": sum(d.errors for d in days),
                "prompt_tokens": sum(d.prompt_tokens for d in days),
                "completion_tokens": sum(d.completion_tokens for d in days),
            },
        }
        return TemplateResponse(request, "admin/chat/usage.html", context)


def _date_param(value: str | None, default: date) -> date:
    try:
        return date.fromisoformat(value) if value else default
    except ValueError:
        return default


def _int_param(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() and len(value) < 12 else None
