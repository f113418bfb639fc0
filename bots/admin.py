from django import forms
from django.contrib import admin
from django.utils.translation import gettext_lazy as _

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
        fields = ["name", "kind", "base_url", "api_key", "default_model", "timeout_seconds"]

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
        (None, {"fields": ["name", "description", "enabled"]}),
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
        (
            _("What callers may send"),
            {"fields": ["allow_request_tools", "allow_request_media"]},
        ),
    ]

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        bot_cache.invalidate()
