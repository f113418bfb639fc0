from django import forms
from django.contrib import admin, messages
from django.template.response import TemplateResponse
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from apikeys.models import ApiKey
from apikeys.selectors import principal_cache
from apikeys.services import api_key_create, api_key_default_bot_settle, api_keys_set_enabled


class ApiKeyForm(forms.ModelForm):
    """The default bot, when chosen, must be one of the allowed bots (or any bot when the key
    may use every bot)."""

    class Meta:
        model = ApiKey
        fields = [
            "name",
            "enabled",
            "expires_at",
            "allowed_bots",
            "default_bot",
            "allowed_workflows",
            "rate_limit_per_minute",
        ]

    def clean(self) -> dict:
        cleaned = super().clean()
        default_bot = cleaned.get("default_bot")
        allowed_bots = cleaned.get("allowed_bots")
        if default_bot is not None and allowed_bots and default_bot not in allowed_bots:
            self.add_error("default_bot", _("The default bot must be one of the allowed bots."))
        return cleaned


def picked_bot_ids(form: forms.ModelForm) -> list[int]:
    """The allowed bots in the order the operator picked them: the admin's selector posts its
    chosen box in the order bots were moved into it."""
    return [int(value) for value in form.data.getlist("allowed_bots") if value.isdigit()]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys are generated on save; the full key is rendered once in the response to the add
    form (never stored, never put in a message or session), then only its prefix. The default
    bot (used when an OpenAI-compatible request names no model) is the first allowed bot
    picked, unless the operator chooses another."""

    form = ApiKeyForm

    list_display = [
        "name",
        "prefix_display",
        "enabled",
        "expires_at",
        "last_used_at",
        "rate_limit_per_minute",
    ]
    list_filter = ["enabled"]
    search_fields = ["name", "prefix"]
    fields = [
        "name",
        "enabled",
        "expires_at",
        "allowed_bots",
        "default_bot",
        "allowed_workflows",
        "allowed_knowledge_bases",
        "rate_limit_per_minute",
    ]
    readonly_fields = ["prefix_display", "created_by", "created_at", "last_used_at"]
    filter_horizontal = ["allowed_bots", "allowed_workflows", "allowed_knowledge_bases"]
    actions = ["disable_keys", "enable_keys"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return [
                "name",
                "expires_at",
                "allowed_bots",
                "default_bot",
                "allowed_workflows",
                "allowed_knowledge_bases",
                "rate_limit_per_minute",
            ]
        return ["prefix_display", *self.fields, "created_by", "created_at", "last_used_at"]

    @admin.display(description=_("key"), ordering="prefix")
    def prefix_display(self, api_key: ApiKey) -> str:
        return f"{api_key.prefix}…"

    def save_model(self, request, obj, form, change) -> None:
        if change:
            super().save_model(request, obj, form, change)
            principal_cache.invalidate()
            return
        _api_key, raw_key = api_key_create(name=obj.name, created_by=request.user, api_key=obj)
        request.new_api_key = raw_key

    def save_related(self, request, form, formsets, change) -> None:
        super().save_related(request, form, formsets, change)
        api_key_default_bot_settle(api_key=form.instance, picked_bot_ids=picked_bot_ids(form))
        principal_cache.invalidate()

    def response_add(self, request, obj, post_url_continue=None):
        raw_key = getattr(request, "new_api_key", None)
        if raw_key is None or "_popup" in request.POST:
            return super().response_add(request, obj, post_url_continue)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "api_key": obj,
            "raw_key": raw_key,
            "title": _("API key created"),
        }
        response = TemplateResponse(request, "apikeys/created.html", context)
        response["Cache-Control"] = "no-store"
        return response

    def _set_enabled(self, request, queryset, enabled: bool) -> None:
        count = api_keys_set_enabled(api_keys=queryset, enabled=enabled)
        principal_cache.invalidate()
        message = (
            ngettext("%d key enabled.", "%d keys enabled.", count)
            if enabled
            else ngettext("%d key disabled.", "%d keys disabled.", count)
        )
        self.message_user(request, message % count, messages.SUCCESS)

    @admin.action(description=_("Disable selected keys"))
    def disable_keys(self, request, queryset) -> None:
        self._set_enabled(request, queryset, False)

    @admin.action(description=_("Enable selected keys"))
    def enable_keys(self, request, queryset) -> None:
        self._set_enabled(request, queryset, True)
