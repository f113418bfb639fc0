"""Admin for workflows (validated JSON, import/export, graph, test run) and their runs
(read-only, step by step)."""

from __future__ import annotations

import json
import re
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy as _

from aiflowy.admin_pagination import EstimatedCountPaginator
from aiflowy.errors import ApiError
from workflows.checker_messages import checker_message
from workflows.definitions import workflow_create, workflow_export_document, workflow_saved
from workflows.editor import workflow_editor_config
from workflows.engine import input_parameters
from workflows.forms import ConfirmRunForm, TestRunForm, WorkflowAdminForm, WorkflowImportForm
from workflows.graph import definition_svg
from workflows.models import Workflow, WorkflowRun, WorkflowStep
from workflows.runs import workflow_resume_now, workflow_run_now
from workflows.selectors import WorkflowConfig

STARTER_DEFINITION = {
    "nodes": [
        {
            "id": "start",
            "type": "startNode",
            "data": {
                "title": "Start",
                "parameters": [
                    {"name": "text", "dataType": "String", "refType": "input", "required": True}
                ],
            },
        },
        {
            "id": "end",
            "type": "endNode",
            "data": {
                "title": "End",
                "outputDefs": [{"name": "text", "refType": "ref", "ref": "start.text"}],
            },
        },
    ],
    "edges": [{"id": "e1", "source": "start", "target": "end"}],
}


def pretty_json(value: Any) -> str:
    if value in (None, {}, []):
        return mark_safe('<span class="quiet">—</span>')
    text = json.dumps(value, ensure_ascii=False, indent=2, default=str)
    return format_html(
        '<pre style="white-space: pre-wrap; max-height: 24em; overflow: auto; margin: 0">{}</pre>',
        text,
    )


def status_badge(status: str, label: str) -> str:
    colours = {
        "succeeded": "#2e7d32",
        "failed": "#c62828",
        "timeout": "#c62828",
        "cancelled": "#8d6e63",
        "skipped": "#78909c",
        "running": "#1565c0",
        "queued": "#1565c0",
        "suspended": "#ef6c00",
    }
    return format_html(
        '<strong style="color: {}">{}</strong>', colours.get(status, "inherit"), label
    )


@admin.register(Workflow)
class WorkflowAdmin(admin.ModelAdmin):
    form = WorkflowAdminForm
    list_display = ["id", "title", "enabled", "node_count", "updated_at", "tools"]
    list_display_links = ["id", "title"]
    list_filter = ["enabled"]
    search_fields = ["title", "description"]
    readonly_fields = ["graph", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["title", "description", "enabled"]}),
        (_("Graph"), {"fields": ["graph"]}),
        (_("Definition"), {"fields": ["definition"]}),
        (None, {"fields": ["created_at", "updated_at"]}),
    ]
    change_form_template = "admin/workflows/workflow/change_form.html"
    change_list_template = "admin/workflows/workflow/change_list.html"

    # --- list and form -------------------------------------------------------------------
    @admin.display(description=_("nodes"))
    def node_count(self, workflow: Workflow) -> int:
        nodes = workflow.definition.get("nodes") if isinstance(workflow.definition, dict) else None
        return len(nodes) if isinstance(nodes, list) else 0

    @admin.display(description="")
    def tools(self, workflow: Workflow) -> str:
        return format_html(
            '<a href="{}">{}</a> · <a href="{}">{}</a> · <a href="{}">{}</a> · <a href="{}">{}</a>',
            reverse("admin:workflows_workflow_graph", args=[workflow.pk]),
            _("graph"),
            reverse("admin:workflows_workflow_test_run", args=[workflow.pk]),
            _("test run"),
            reverse("admin:workflows_workflow_export", args=[workflow.pk]),
            _("export"),
            reverse("admin:workflows_workflowrun_changelist")
            + f"?workflow__id__exact={workflow.pk}",
            _("runs"),
        )

    @admin.display(description=_("graph"))
    def graph(self, workflow: Workflow) -> str:
        if workflow.pk is None:
            return "—"
        return format_html(
            '<div style="overflow-x: auto; max-width: 100%">{}</div>',
            definition_svg(workflow.definition),
        )

    def get_changeform_initial_data(self, request: HttpRequest) -> dict:
        initial = super().get_changeform_initial_data(request)
        initial.setdefault("definition", STARTER_DEFINITION)
        return initial

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        workflow_saved(workflow=obj)

    def render_change_form(self, request, context, *args, **kwargs):
        # Tinyflow's editor on the change page: its provider lists come from the project.
        context["workflow_editor"] = workflow_editor_config()
        return super().render_change_form(request, context, *args, **kwargs)

    # --- extra pages ---------------------------------------------------------------------
    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("import/", view(self.import_view), name="workflows_workflow_import"),
            path(
                "<path:object_id>/export/", view(self.export_view), name="workflows_workflow_export"
            ),
            path("<path:object_id>/graph/", view(self.graph_view), name="workflows_workflow_graph"),
            path(
                "<path:object_id>/test-run/",
                view(self.test_run_view),
                name="workflows_workflow_test_run",
            ),
            *super().get_urls(),
        ]

    def _workflow_or_404(self, request: HttpRequest, object_id: str) -> Workflow:
        workflow = self.get_object(request, object_id)
        if workflow is None:
            raise Http404(_("There is no workflow with this id."))
        return workflow

    def _page(self, request: HttpRequest, template: str, title: str, **context: Any):
        return TemplateResponse(
            request,
            template,
            {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "title": title,
                **context,
            },
        )

    def import_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = WorkflowImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            document = form.document
            workflow = workflow_create(
                title=form.cleaned_data["title"].strip() or document.title,
                description=document.description,
                definition=document.definition,
            )
            self.log_addition(request, workflow, [{"added": {}}])
            self.message_user(
                request, _("Imported workflow “%s”.") % workflow.title, messages.SUCCESS
            )
            return redirect("admin:workflows_workflow_change", workflow.pk)
        return self._page(
            request, "admin/workflows/workflow/import.html", _("Import a workflow"), form=form
        )

    def export_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        workflow = self._workflow_or_404(request, object_id)
        if not self.has_view_permission(request, workflow):
            raise PermissionDenied
        slug = re.sub(r"[^A-Za-z0-9_-]+", "-", workflow.title).strip("-")[:60] or "workflow"
        response = JsonResponse(
            workflow_export_document(workflow=workflow),
            json_dumps_params={"ensure_ascii": False, "indent": 2},
        )
        response["Content-Disposition"] = f'attachment; filename="{workflow.pk}-{slug}.json"'
        return response

    def graph_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        workflow = self._workflow_or_404(request, object_id)
        if not self.has_view_permission(request, workflow):
            raise PermissionDenied
        config = WorkflowConfig.from_model(workflow)
        return self._page(
            request,
            "admin/workflows/workflow/graph.html",
            _("Graph of “%s”") % workflow.title,
            original=workflow,
            svg=definition_svg(workflow.definition),
            definition_error=checker_message(config.definition_error),
        )

    def test_run_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        workflow = self._workflow_or_404(request, object_id)
        if not self.has_change_permission(request, workflow):
            raise PermissionDenied
        config = WorkflowConfig.from_model(workflow)
        parameters = input_parameters(config.definition) if config.definition else []
        form = TestRunForm(parameters, request.POST or None)
        run = None
        if request.method == "POST" and config.definition is not None and form.is_valid():
            try:
                run_id, _outcome = workflow_run_now(workflow=workflow, variables=form.variables())
            except ValidationError as error:
                for field, field_errors in error.message_dict.items():
                    field_errors = [checker_message(text) for text in field_errors]
                    form.add_error(field if field in form.fields else None, field_errors)
            except ApiError as error:
                form.add_error(None, error.message)
            else:
                run = WorkflowRun.objects.prefetch_related("steps").get(run_id=run_id)
        return self._page(
            request,
            "admin/workflows/workflow/test_run.html",
            _("Test run of “%s”") % workflow.title,
            original=workflow,
            form=form,
            definition_error=checker_message(config.definition_error),
            run=run,
            result_json=json.dumps(run.result, ensure_ascii=False, indent=2) if run else "",
            steps=[
                {
                    "step": step,
                    "inputs": json.dumps(step.inputs, ensure_ascii=False, indent=2),
                    "outputs": json.dumps(step.outputs, ensure_ascii=False, indent=2),
                }
                for step in (run.steps.all() if run else [])
            ],
        )


class WorkflowStepInline(admin.TabularInline):
    model = WorkflowStep
    extra = 0
    can_delete = False
    fields = [
        "position",
        "node_id",
        "node_type",
        "title",
        "status_display",
        "started_at",
        "duration_ms",
        "attempts",
        "inputs_display",
        "outputs_display",
        "meta_display",
        "error",
    ]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description=_("status"))
    def status_display(self, step: WorkflowStep) -> str:
        return status_badge(step.status, step.get_status_display())

    @admin.display(description=_("inputs"))
    def inputs_display(self, step: WorkflowStep) -> str:
        return pretty_json(step.inputs)

    @admin.display(description=_("outputs"))
    def outputs_display(self, step: WorkflowStep) -> str:
        return pretty_json(step.outputs)

    @admin.display(description=_("details"))
    def meta_display(self, step: WorkflowStep) -> str:
        return pretty_json(step.meta)


@admin.register(WorkflowRun)
class WorkflowRunAdmin(admin.ModelAdmin):
    """Read-only: a run is what happened."""

    list_display = [
        "run_id",
        "workflow_display",
        "status_display",
        "source",
        "api_key",
        "duration_ms",
        "created_at",
    ]
    list_filter = ["status", "source", "workflow", ("created_at", admin.DateFieldListFilter)]
    list_select_related = ["workflow", "api_key"]
    search_fields = ["=run_id", "workflow_title", "error", "failed_node_id"]
    date_hierarchy = "created_at"
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    inlines = [WorkflowStepInline]
    fields = [
        "run_id",
        "workflow",
        "workflow_title",
        "status_display",
        "source",
        "api_key",
        "inputs_display",
        "result_display",
        "error",
        "failed_node_id",
        "created_at",
        "started_at",
        "finished_at",
        "duration_ms",
        "waiting_display",
        "expires_at",
    ]
    readonly_fields = fields

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path(
                "<path:object_id>/confirm/",
                view(self.confirm_view),
                name="workflows_workflowrun_confirm",
            ),
            *super().get_urls(),
        ]

    @admin.display(description=_("waiting for"))
    def waiting_display(self, run: WorkflowRun) -> str:
        if run.status != WorkflowRun.Status.SUSPENDED:
            return pretty_json(None)
        link = reverse("admin:workflows_workflowrun_confirm", args=[run.pk])
        return format_html(
            '{}<p><a class="button" href="{}">{}</a></p>',
            pretty_json(run.waiting_for),
            link,
            _("Confirm…"),
        )

    def confirm_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """An operator confirms a suspended run (or fills the values it waits for); the run
        continues here, as an admin test run does."""
        run = self.get_object(request, object_id)
        if run is None:
            raise Http404(_("There is no run with this id."))
        if not request.user.has_perm("workflows.change_workflow"):
            raise PermissionDenied
        if run.status != WorkflowRun.Status.SUSPENDED:
            self.message_user(
                request, _("This run is not waiting for confirmation."), messages.WARNING
            )
            return redirect("admin:workflows_workflowrun_change", run.pk)
        form = ConfirmRunForm(run.waiting_for or [], request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                outcome = workflow_resume_now(run=run, values=form.values())
            except ValidationError as error:
                for field, field_errors in error.message_dict.items():
                    form.add_error(field if field in form.fields else None, field_errors)
            except ApiError as error:
                form.add_error(None, error.message)
            else:
                self.message_user(
                    request, _("Confirmed; the run is now: %s") % outcome.status, messages.SUCCESS
                )
                return redirect("admin:workflows_workflowrun_change", run.pk)
        return TemplateResponse(
            request,
            "admin/workflows/workflowrun/confirm.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "title": _("Confirm run %s") % run.run_id,
                "original": run,
                "form": form,
                "messages_to_confirm": [
                    w.get("message") for w in run.waiting_for or [] if w.get("message")
                ],
            },
        )

    @admin.display(description=_("workflow"), ordering="workflow_title")
    def workflow_display(self, run: WorkflowRun) -> str:
        return run.workflow_title or (str(run.workflow_id) if run.workflow_id else "—")

    @admin.display(description=_("status"), ordering="status")
    def status_display(self, run: WorkflowRun) -> str:
        return status_badge(run.status, run.get_status_display())

    @admin.display(description=_("inputs"))
    def inputs_display(self, run: WorkflowRun) -> str:
        return pretty_json(run.inputs)

    @admin.display(description=_("result"))
    def result_display(self, run: WorkflowRun) -> str:
        return pretty_json(run.result)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


# Search engines' admin lives in its own module.
from workflows import admin_search  # noqa: E402,F401
