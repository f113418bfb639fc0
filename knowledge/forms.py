"""Admin forms: adding content to a knowledge base (files, a pasted text or a link) and the
search test."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from knowledge.documents import SUFFIXES
from knowledge.models import SearchMode

MAX_UPLOAD_BYTES = 20_000_000


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("widget", MultipleFileInput(attrs={"accept": ",".join(SUFFIXES)}))
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        single = super().clean
        if isinstance(data, list | tuple):
            return [single(item, initial) for item in data]
        return [single(data, initial)] if data else []


class AddContentForm(forms.Form):
    files = MultipleFileField(
        label=_("files"),
        required=False,
        help_text=_(
            "TXT, Markdown, PDF and DOCX are split into chunks; CSV and JSONL rows are q,a."
        ),
    )
    text = forms.CharField(
        label=_("text"), required=False, widget=forms.Textarea(attrs={"rows": 8})
    )
    text_name = forms.CharField(label=_("name of the text"), required=False, max_length=200)
    link = forms.URLField(
        label=_("link"),
        required=False,
        assume_scheme="https",
        help_text=_("The page is fetched once; its text is split into chunks."),
    )

    def clean_files(self):
        files = self.cleaned_data.get("files") or []
        for upload in files:
            if upload.size > MAX_UPLOAD_BYTES:
                raise forms.ValidationError(
                    _("%(name)s is larger than %(limit)s bytes."),
                    params={"name": upload.name, "limit": MAX_UPLOAD_BYTES},
                )
        return files

    def clean(self):
        cleaned = super().clean()
        if not (cleaned.get("files") or (cleaned.get("text") or "").strip() or cleaned.get("link")):
            raise forms.ValidationError(_("Add at least one file, a text or a link."))
        return cleaned


class SearchTestForm(forms.Form):
    text = forms.CharField(label=_("question"), max_length=2000)
    limit = forms.IntegerField(label=_("limit"), min_value=1, max_value=100, initial=5)
    similarity = forms.FloatField(
        label=_("minimum score"), min_value=0, max_value=1, initial=0, required=False
    )
    modes = forms.MultipleChoiceField(
        label=_("search modes"),
        choices=SearchMode.choices,
        initial=[choice for choice, _label in SearchMode.choices],
        widget=forms.CheckboxSelectMultiple,
    )
