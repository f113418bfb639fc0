from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from apikeys.models import ApiKey
from apikeys.services import api_key_create
from bots.models import Bot, LlmProvider
from bots.selectors import bot_cache


class LlmProviderForm(forms.ModelForm):
    """The provider key is write-only: never rendered back; left empty, it stays unchanged."""

    base_url = forms.URLField(
        label=_("base URL"),
        required=False,
        assume_scheme="https",
        help_text=_("For example https://api.openai.com/v1"),
    )
    api_key = forms.CharField(
        label=_("API key"),
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=_("Write-only. Leave empty to keep the current key."),
    )

    class Meta:
        model = LlmProvider
        fields = [
            "name",
            "kind",
            "base_url",
            "api_key",
            "default_model",
            "timeout_seconds",
            "input_price_per_1k",
            "output_price_per_1k",
        ]

    def clean_api_key(self) -> str:
        new_key = self.cleaned_data.get("api_key", "")
        if not new_key and self.instance.pk:
            return self.instance.api_key
        return new_key


@admin.register(LlmProvider)
class LlmProviderAdmin(admin.ModelAdmin):
    form = LlmProviderForm
    list_display = ["name", "kind", "base_url", "default_model", "has_api_key", "updated_at"]
    search_fields = ["name", "base_url"]

    @admin.display(boolean=True, description=_("key set"))
    def has_api_key(self, provider: LlmProvider) -> bool:
        return bool(provider.api_key)

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        bot_cache.invalidate()


@admin.register(Bot)
class BotAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "provider", "model", "enabled", "updated_at"]
    list_display_links = ["id", "name"]
    list_filter = ["enabled", "provider"]
    search_fields = ["name", "description"]
    fieldsets = [
        (None, {"fields": ["name", "description", "enabled", "playground_link"]}),
        (_("Model"), {"fields": ["provider", "model", "system_prompt", "welcome_message"]}),
        (
            _("Generation"),
            {
                "fields": [
                    "temperature",
                    "top_p",
                    "max_tokens",
                    "history_window",
                    "allow_request_overrides",
                ]
            },
        ),
        (_("Prices"), {"fields": ["input_price_per_1k", "output_price_per_1k"]}),
        (
            _("What callers may send"),
            {"fields": ["allow_request_tools", "allow_request_media"]},
        ),
    ]

    readonly_fields = ["playground_link"]

    @admin.display(description=_("playground"))
    def playground_link(self, bot: Bot) -> str:
        """A chat with this bot in the browser, every detail shown (shares/ serves it)."""
        if bot.pk is None:
            return "—"
        url = reverse("shares:playground", args=[bot.pk])
        return format_html('<a class="button" href="{}">{}</a>', url, _("Open the playground"))

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        bot_cache.invalidate()

    # --- the bot's API key section (as AIFlowy's bot page has) ------------------------------
    def get_urls(self):
        add_key = self.admin_site.admin_view(require_POST(self.add_api_key_view))
        return [
            path("<int:object_id>/api-keys/add/", add_key, name="bots_bot_add_api_key"),
            *super().get_urls(),
        ]

    def _may_add_api_key(self, request) -> bool:
        return request.user.has_perm("apikeys.add_apikey")

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = dict(extra_context or {})
        if request.user.has_perm("apikeys.view_apikey") or self._may_add_api_key(request):
            extra_context["bot_api_keys"] = list(
                ApiKey.objects.filter(allowed_bots__pk=object_id).order_by("-created_at")
            )
            extra_context["may_add_api_key"] = self._may_add_api_key(request)
        return super().change_view(request, object_id, form_url, extra_context)

    def add_api_key_view(self, request, object_id: int):
        """新增 on the bot's page: a key limited to this bot, shown once in this response
        (never stored, never put in a message or session) and then only by its prefix."""
        bot = get_object_or_404(Bot, pk=object_id)
        if not (self.has_change_permission(request, bot) and self._may_add_api_key(request)):
            raise PermissionDenied
        name = (request.POST.get("new_api_key_name") or "").strip()[:100] or bot.name
        api_key, raw_key = api_key_create(name=name, created_by=request.user, bot_ids=[bot.pk])
        context = {
            **self.admin_site.each_context(request),
            "opts": ApiKey._meta,
            "api_key": api_key,
            "raw_key": raw_key,
            "title": _("API key created"),
            "done_url": reverse("admin:bots_bot_change", args=[bot.pk]),
        }
        response = TemplateResponse(request, "apikeys/created.html", context)
        response["Cache-Control"] = "no-store"
        return response
