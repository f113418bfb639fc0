"""Admin for search engines (imported by ``workflows/admin.py``). The API key is write-only:
it is never shown again, only whether one is set; leaving the field empty keeps it."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from workflows.models import SearchEngine


class SearchEngineForm(forms.ModelForm):
    url = forms.URLField(
        label=_("URL"),
        max_length=500,
        assume_scheme="https",
        help_text=_("SearXNG: the instance's address. Generic JSON: the search endpoint."),
    )
    api_key = forms.CharField(
        label=_("API key"),
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=_("Stored encrypted and never shown again. Leave empty to keep the current one."),
    )
    clear_api_key = forms.BooleanField(label=_("Remove the API key"), required=False)

    class Meta:
        model = SearchEngine
        fields = [
            "name",
            "title",
            "kind",
            "url",
            "api_key",
            "clear_api_key",
            "api_key_header",
            "api_key_prefix",
            "method",
            "query_field",
            "limit_field",
            "results_path",
            "title_field",
            "content_field",
            "url_field",
            "extra_params",
            "allow_private",
            "enabled",
        ]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # "Bearer " ends with the space that separates it from the key.
        self.fields["api_key_prefix"].strip = False

    def save(self, commit: bool = True) -> SearchEngine:
        engine = super().save(commit=False)
        if self.cleaned_data.get("clear_api_key"):
            engine.api_key_secret = ""
        elif self.cleaned_data.get("api_key"):
            engine.api_key_secret = self.cleaned_data["api_key"]
        if commit:
            engine.save()
        return engine


@admin.register(SearchEngine)
class SearchEngineAdmin(admin.ModelAdmin):
    form = SearchEngineForm
    list_display = ["name", "title", "kind", "url", "has_api_key", "allow_private", "enabled"]
    list_filter = ["kind", "enabled"]
    search_fields = ["name", "title", "url"]
    readonly_fields = ["has_api_key"]
    fieldsets = [
        (None, {"fields": ["name", "title", "kind", "url", "enabled", "allow_private"]}),
        (
            _("Authentication"),
            {
                "fields": [
                    "has_api_key",
                    "api_key",
                    "clear_api_key",
                    "api_key_header",
                    "api_key_prefix",
                ]
            },
        ),
        (
            _("Generic JSON API"),
            {
                "fields": [
                    "method",
                    "query_field",
                    "limit_field",
                    "results_path",
                    "title_field",
                    "content_field",
                    "url_field",
                    "extra_params",
                ]
            },
        ),
    ]

    @admin.display(boolean=True, description=_("API key set"))
    def has_api_key(self, engine: SearchEngine) -> bool:
        return bool(engine.api_key_secret)

    def get_changeform_initial_data(self, request: HttpRequest) -> dict:
        return {"kind": SearchEngine.Kind.SEARXNG}
