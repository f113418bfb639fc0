"""Workflow definitions (AIFlowy/Tinyflow node-edge JSON) and their runs."""

import uuid

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from aiflowy.crypto import EncryptedTextField


class Workflow(models.Model):
    title = models.CharField(_("title"), max_length=200)
    description = models.TextField(_("description"), blank=True)
    definition = models.JSONField(_("definition"), default=dict)
    enabled = models.BooleanField(_("enabled"), default=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("workflow")
        verbose_name_plural = _("workflows")
        ordering = ["id"]

    def __str__(self) -> str:
        return self.title


class WorkflowRun(models.Model):
    """One run of a workflow: who asked, with what, how it ended, and (in `steps`) what each
    node did. `run_id` is the id callers see (async runs, stream events, status endpoint)."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("queued")
        RUNNING = "running", _("running")
        SUCCEEDED = "succeeded", _("succeeded")
        FAILED = "failed", _("failed")
        TIMEOUT = "timeout", _("timed out")
        CANCELLED = "cancelled", _("cancelled")
        SUSPENDED = "suspended", _("waiting for confirmation")

    # At rest: no process works on it. A suspended run waits for a resume call (or expires).
    FINISHED = frozenset(
        {Status.SUCCEEDED, Status.FAILED, Status.TIMEOUT, Status.CANCELLED, Status.SUSPENDED}
    )

    class Source(models.TextChoices):
        API = "api", _("API")
        STREAM = "stream", _("API, streamed")
        ASYNC = "async", _("API, in the background")
        ADMIN = "admin", _("admin test run")
        SOCKET = "socket", _("API, WebSocket")

    run_id = models.UUIDField(_("run id"), unique=True, default=uuid.uuid4, editable=False)
    workflow = models.ForeignKey(
        Workflow,
        null=True,
        on_delete=models.SET_NULL,
        related_name="runs",
        verbose_name=_("workflow"),
    )
    # Kept so a run still says what ran after its workflow is deleted or renamed.
    workflow_title = models.CharField(_("workflow title"), max_length=200, blank=True)
    api_key = models.ForeignKey(
        "apikeys.ApiKey",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="workflow_runs",
        verbose_name=_("API key"),
    )
    source = models.CharField(_("source"), max_length=20, choices=Source.choices)
    status = models.CharField(_("status"), max_length=20, choices=Status.choices)
    inputs = models.JSONField(_("inputs"), default=dict, blank=True)
    result = models.JSONField(_("result"), null=True, blank=True)
    error = models.TextField(_("error"), blank=True)
    failed_node_id = models.CharField(_("failed node"), max_length=200, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now, db_index=True)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    duration_ms = models.PositiveIntegerField(_("duration (ms)"), null=True, blank=True)
    # A suspended run: what it waits for (nodes, message, fields), the engine's snapshot to
    # resume from (with the definition that started it) and when it stops waiting.
    waiting_for = models.JSONField(_("waiting for"), null=True, blank=True)
    resume_state = models.JSONField(_("saved state"), null=True, blank=True, editable=False)
    expires_at = models.DateTimeField(_("expires"), null=True, blank=True)

    class Meta:
        verbose_name = _("workflow run")
        verbose_name_plural = _("workflow runs")
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["workflow", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.workflow_title or self.workflow_id} · {self.run_id}"


class WorkflowStep(models.Model):
    """What one node did in a run, in the order the nodes finished."""

    class Status(models.TextChoices):
        SUCCEEDED = "succeeded", _("succeeded")
        FAILED = "failed", _("failed")
        SKIPPED = "skipped", _("skipped")
        CANCELLED = "cancelled", _("cancelled")
        SUSPENDED = "suspended", _("waiting for confirmation")

    run = models.ForeignKey(
        WorkflowRun, on_delete=models.CASCADE, related_name="steps", verbose_name=_("run")
    )
    position = models.PositiveIntegerField(_("#"))
    node_id = models.CharField(_("node"), max_length=200)
    node_type = models.CharField(_("node type"), max_length=50)
    title = models.CharField(_("title"), max_length=200, blank=True)
    status = models.CharField(_("status"), max_length=20, choices=Status.choices)
    inputs = models.JSONField(_("inputs"), default=dict, blank=True)
    outputs = models.JSONField(_("outputs"), default=dict, blank=True)
    # Extras for history: an LLM node's prompts, model and tokens; an HTTP node's request.
    meta = models.JSONField(_("details"), default=dict, blank=True)
    error = models.TextField(_("error"), blank=True)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    duration_ms = models.PositiveIntegerField(_("duration (ms)"), null=True, blank=True)

    class Meta:
        verbose_name = _("step")
        verbose_name_plural = _("steps")
        ordering = ["run", "position"]
        constraints = [
            models.UniqueConstraint(fields=["run", "position"], name="workflows_step_position")
        ]

    def __str__(self) -> str:
        return f"{self.node_id} ({self.status})"


class SearchEngine(models.Model):
    """A web search engine that workflows' ``searchEngineNode`` may call, by ``name``.

    The API key is stored encrypted (``aiflowy.crypto``, like provider keys: rotated with
    ``AIFLOWY_ENCRYPTION_KEYS`` and ``manage.py reencryptsecrets``): it must be sent to the
    engine, so it cannot be hashed, and a database dump alone must not reveal it.
    """

    class Kind(models.TextChoices):
        SEARXNG = "searxng", _("SearXNG (JSON API)")
        JSON = "json", _("generic JSON over HTTP")

    class Method(models.TextChoices):
        GET = "GET", "GET"
        POST = "POST", "POST"

    name = models.SlugField(
        _("name"),
        max_length=100,
        unique=True,
        help_text=_("What workflows write in a search engine node's “engine”."),
    )
    title = models.CharField(_("title"), max_length=200, blank=True)
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices, default=Kind.SEARXNG)
    url = models.URLField(
        _("URL"),
        max_length=500,
        help_text=_("SearXNG: the instance's address. Generic JSON: the search endpoint."),
    )
    # Plain text here, `fernet:<token>` in the database; set only by the admin's write-only field.
    api_key_secret = EncryptedTextField(_("API key"), blank=True, editable=False)
    api_key_header = models.CharField(
        _("API key header"), max_length=100, default="Authorization", blank=True
    )
    api_key_prefix = models.CharField(
        _("API key prefix"), max_length=50, default="Bearer ", blank=True
    )
    method = models.CharField(
        _("HTTP method"), max_length=10, choices=Method.choices, default=Method.GET
    )
    query_field = models.CharField(_("query field"), max_length=100, default="q")
    limit_field = models.CharField(
        _("limit field"),
        max_length=100,
        blank=True,
        help_text=_("Leave empty if the API takes no result count."),
    )
    results_path = models.CharField(
        _("results path"),
        max_length=200,
        default="results",
        help_text=_("Dotted path to the result list in the answer, e.g. data.webPages.value."),
    )
    title_field = models.CharField(_("title field"), max_length=100, default="title")
    content_field = models.CharField(_("content field"), max_length=100, default="content")
    url_field = models.CharField(_("URL field"), max_length=100, default="url")
    extra_params = models.JSONField(
        _("extra parameters"),
        default=dict,
        blank=True,
        help_text=_("Sent with every search (query parameters, or body fields for POST)."),
    )
    allow_private = models.BooleanField(
        _("on a private network"),
        default=False,
        help_text=_("Allow a private or loopback address (a self-hosted SearXNG, say)."),
    )
    enabled = models.BooleanField(_("enabled"), default=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("search engine")
        verbose_name_plural = _("search engines")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.title or self.name
