"""Admin forms: the workflow editor (JSON validated by the engine), import, and the test run
form built from the start node's parameters."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from workflows.definitions import (
    WorkflowDocument,
    workflow_definition_check,
    workflow_document_parse,
)
from workflows.engine import StartParameter
from workflows.models import Workflow

MAX_IMPORT_BYTES = 5_000_000


class IndentedJSONField(forms.JSONField):
    """Shows the definition indented, as an operator reads and edits it (and keeps CJK text
    readable instead of \\u escapes)."""

    def prepare_value(self, value: Any) -> str:
        if isinstance(value, forms.fields.InvalidJSONInput):
            return value
        return json.dumps(value, ensure_ascii=False, indent=2, cls=self.encoder)


class WorkflowAdminForm(forms.ModelForm):
    class Meta:
        model = Workflow
        fields = ["title", "description", "enabled", "definition"]
        field_classes = {"definition": IndentedJSONField}
        widgets = {
            "definition": forms.Textarea(
                attrs={
                    "rows": 28,
                    "spellcheck": "false",
                    "style": "font-family: monospace; width: 95%;",
                }
            )
        }
        help_texts = {
            "definition": _(
                'AIFlowy/Tinyflow JSON ({"nodes": [...], "edges": [...]}). It is checked '
                "when you save: one start node, an end node, edges between existing nodes, no "
                "cycles, references to upstream outputs, known node types."
            )
        }

    def clean_definition(self) -> Any:
        definition = self.cleaned_data.get("definition")
        workflow_definition_check(definition)
        return definition


class WorkflowImportForm(forms.Form):
    file = forms.FileField(
        label=_("JSON file"),
        help_text=_(
            "A file exported from aiflowy or AIFlowy, or a bare Tinyflow definition "
            '({"nodes": [...], "edges": [...]}).'
        ),
    )
    title = forms.CharField(
        label=_("title"),
        max_length=200,
        required=False,
        help_text=_("Empty: the title in the file, else the file name."),
    )

    def clean(self) -> dict:
        cleaned = super().clean()
        upload = cleaned.get("file")
        if upload is None:
            return cleaned
        if upload.size > MAX_IMPORT_BYTES:
            raise forms.ValidationError(
                _("The file is larger than %(limit)d bytes."), params={"limit": MAX_IMPORT_BYTES}
            )
        self.document: WorkflowDocument = workflow_document_parse(
            upload.read(), filename=upload.name or ""
        )
        return cleaned


_JSON_TYPES = ("Object", "Array")


def _field_for(parameter: StartParameter) -> forms.Field:
    label = parameter.extra.get("formLabel") or parameter.name
    help_parts = [f"{parameter.name} · {parameter.data_type}"]
    if parameter.description:
        help_parts.append(parameter.description)
    options: dict[str, Any] = {
        "label": label,
        "required": parameter.required and parameter.default_value in (None, ""),
        "help_text": " — ".join(help_parts),
    }
    if parameter.default_value not in (None, ""):
        options["initial"] = parameter.default_value
    base = parameter.data_type.split("<", 1)[0].strip().capitalize()
    if parameter.enums:
        choices = [("", "—")] + [(str(item), str(item)) for item in parameter.enums]
        return forms.ChoiceField(choices=choices, **options)
    if base == "Boolean":
        return forms.ChoiceField(
            choices=[("", "—"), ("true", "true"), ("false", "false")], **options
        )
    if base in _JSON_TYPES:
        options["help_text"] += " — JSON"
        return forms.CharField(
            widget=forms.Textarea(attrs={"rows": 4, "style": "font-family: monospace"}),
            **options,
        )
    placeholder = parameter.extra.get("formPlaceholder")
    widget_attrs = {"placeholder": placeholder} if placeholder else {}
    return forms.CharField(widget=forms.TextInput(attrs=widget_attrs), **options)


class TestRunForm(forms.Form):
    """One field per start parameter. Values are sent as text; the engine converts them to
    each parameter's data type, exactly as for an API caller."""

    def __init__(self, parameters: list[StartParameter], *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("prefix", "var")
        super().__init__(*args, **kwargs)
        for parameter in parameters:
            self.fields[parameter.name] = _field_for(parameter)

    def variables(self) -> dict[str, str]:
        return {name: value for name, value in self.cleaned_data.items() if value not in ("",)}


class ConfirmRunForm(forms.Form):
    """An operator confirms a suspended run: one field per value it waits for (a choice when
    the node offers options), named as the resume call names them."""

    def __init__(self, waiting_for: list[dict], *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("prefix", "confirm")
        super().__init__(*args, **kwargs)
        for waiting in waiting_for or []:
            for item in waiting.get("fields") or []:
                label = f"{waiting.get('title') or waiting.get('nodeId')}: {item.get('label')}"
                options = item.get("enums")
                if options:
                    self.fields[item["name"]] = forms.ChoiceField(
                        label=label, choices=[(str(o), str(o)) for o in options]
                    )
                else:
                    self.fields[item["name"]] = forms.CharField(label=label)

    def values(self) -> dict[str, str]:
        return dict(self.cleaned_data)
