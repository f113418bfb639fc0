"""Knowledge bases (FastGPT's datasets): collections of data items a bot or a workflow quotes
from, and the training bills that account for filling them."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

DEFAULT_QUOTE_TEMPLATE = "{{q}}\n{{a}}"
DEFAULT_QUOTE_PROMPT = (
    "Use the quoted passages between <data></data> as your knowledge when answering. "
    "If they do not contain the answer, say that you do not know.\n"
    "<data>\n{{quote}}\n</data>"
)


class SearchMode(models.TextChoices):
    EMBEDDING = "embedding", _("Vector (embedding)")
    FULL_TEXT = "fullTextRecall", _("Full text")
    MIXED = "mixedRecall", _("Mixed (reciprocal-rank fusion)")


class KnowledgeBase(models.Model):
    name = models.CharField(_("name"), max_length=100, unique=True)
    description = models.TextField(_("description"), blank=True)
    embedding_provider = models.ForeignKey(
        "bots.LlmProvider",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("embedding provider"),
        help_text=_("Empty: full-text search only."),
    )
    embedding_model = models.CharField(_("embedding model"), max_length=200, blank=True)
    qa_provider = models.ForeignKey(
        "bots.LlmProvider",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("QA provider"),
        help_text=_("The LLM that splits texts into question/answer pairs (QA mode)."),
    )
    qa_model = models.CharField(
        _("QA model"), max_length=200, blank=True, help_text=_("Empty: the provider's default.")
    )
    rerank_provider = models.ForeignKey(
        "bots.LlmProvider",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("rerank provider"),
        help_text=_("Optional: a provider with a /rerank endpoint."),
    )
    rerank_model = models.CharField(_("rerank model"), max_length=200, blank=True)
    chunk_size = models.PositiveIntegerField(_("chunk size (characters)"), default=500)
    chunk_overlap = models.PositiveIntegerField(_("chunk overlap (characters)"), default=50)
    search_mode = models.CharField(
        _("default search mode"),
        max_length=20,
        choices=SearchMode.choices,
        default=SearchMode.MIXED,
    )
    search_limit = models.PositiveIntegerField(_("default result limit"), default=12)
    min_score = models.FloatField(_("default minimum score"), default=0.0)
    quote_template = models.TextField(
        _("quote template"),
        default=DEFAULT_QUOTE_TEMPLATE,
        help_text=_(
            "How one quoted item is written into a bot's prompt: {{q}}, {{a}}, {{source}}."
        ),
    )
    quote_prompt = models.TextField(
        _("quote prompt"),
        default=DEFAULT_QUOTE_PROMPT,
        help_text=_("The system message that carries the quotes: {{quote}}, {{question}}."),
    )
    # Bumped by every change to the items: per-process search indexes compare it to know
    # whether they are stale.
    data_version = models.PositiveBigIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("knowledge base")
        verbose_name_plural = _("knowledge bases")
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name


class Collection(models.Model):
    """Where items came from: a file, a pasted text, a link fetched once, or the API."""

    class Kind(models.TextChoices):
        FILE = "file", _("File")
        TEXT = "text", _("Text")
        LINK = "link", _("Link")
        API = "api", _("API")

    class Status(models.TextChoices):
        PENDING = "pending", _("pending")
        RUNNING = "running", _("running")
        DONE = "done", _("done")
        FAILED = "failed", _("failed")

    knowledge_base = models.ForeignKey(
        KnowledgeBase,
        on_delete=models.CASCADE,
        related_name="collections",
        verbose_name=_("knowledge base"),
    )
    name = models.CharField(_("name"), max_length=255)
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices, default=Kind.API)
    source = models.CharField(_("source"), max_length=1000, blank=True)
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.DONE
    )
    chunks_total = models.PositiveIntegerField(_("chunks"), default=0)
    chunks_done = models.PositiveIntegerField(_("chunks done"), default=0)
    error = models.TextField(_("error"), blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("collection")
        verbose_name_plural = _("collections")
        ordering = ["-id"]

    def __str__(self) -> str:
        return self.name


class DataItem(models.Model):
    # No index of its own: the unique (knowledge base, content hash) index starts with it and
    # serves every lookup by knowledge base; one index less to maintain on each pushed item.
    knowledge_base = models.ForeignKey(
        KnowledgeBase,
        on_delete=models.CASCADE,
        related_name="items",
        verbose_name=_("knowledge base"),
        db_index=False,
    )
    collection = models.ForeignKey(
        Collection,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="items",
        verbose_name=_("collection"),
    )
    q = models.TextField(_("question / content"))
    a = models.TextField(_("answer / supplement"), blank=True)
    source = models.CharField(_("source"), max_length=1000, blank=True)
    tokens = models.PositiveIntegerField(_("tokens"), default=0)
    indexes = models.JSONField(_("extra indexes"), default=list, blank=True)
    # SHA-256 of q and a: the same item twice in one knowledge base is a duplicate.
    content_hash = models.CharField(max_length=64, editable=False)
    # The full-text terms (jieba words for Chinese, Snowball stems for English), space-joined.
    search_terms = models.TextField(editable=False, blank=True)
    # float32 little-endian; empty when the knowledge base has no embedding model.
    embedding = models.BinaryField(null=True, blank=True, editable=False)
    added_by_key = models.ForeignKey(
        "apikeys.ApiKey",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
        verbose_name=_("added by key"),
        db_index=False,  # a partial index, see Meta
    )
    added_by_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
        verbose_name=_("added by user"),
        db_index=False,  # a partial index, see Meta
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("data item")
        verbose_name_plural = _("data items")
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["knowledge_base", "content_hash"], name="knowledge_item_unique_content"
            )
        ]
        # An item is added by a key (pushData) or by a person (the admin), never both: each
        # index holds only the rows that have a value, so a pushed item updates one of them.
        indexes = [
            models.Index(
                fields=["added_by_key"],
                condition=models.Q(added_by_key__isnull=False),
                name="knowledge_item_by_key",
            ),
            models.Index(
                fields=["added_by_user"],
                condition=models.Q(added_by_user__isnull=False),
                name="knowledge_item_by_user",
            ),
        ]

    def __str__(self) -> str:
        return self.q[:80]


class TrainingBill(models.Model):
    """FastGPT's training bill: what one or more pushData calls put in and what it cost."""

    class Mode(models.TextChoices):
        INDEX = "index", _("index")
        QA = "qa", _("QA")

    class Status(models.TextChoices):
        OPEN = "open", _("open")
        RUNNING = "running", _("running")
        DONE = "done", _("done")
        FAILED = "failed", _("failed")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(_("name"), max_length=200, blank=True)
    knowledge_base = models.ForeignKey(
        KnowledgeBase,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="bills",
        verbose_name=_("knowledge base"),
    )
    mode = models.CharField(_("mode"), max_length=10, choices=Mode.choices, default=Mode.INDEX)
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.OPEN
    )
    items_in = models.PositiveIntegerField(_("items in"), default=0)
    inserted = models.PositiveIntegerField(_("inserted"), default=0)
    skipped = models.PositiveIntegerField(_("skipped"), default=0)
    failed = models.PositiveIntegerField(_("failed"), default=0)
    tokens = models.PositiveIntegerField(_("tokens"), default=0)
    errors = models.JSONField(_("errors"), default=list, blank=True)
    api_key = models.ForeignKey(
        "apikeys.ApiKey",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
        verbose_name=_("API key"),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("training bill")
        verbose_name_plural = _("training bills")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name or str(self.id)


class QaText(models.Model):
    """One text of a QA-mode pushData, waiting for (or done by) the QA training job."""

    class Status(models.TextChoices):
        PENDING = "pending", _("pending")
        DONE = "done", _("done")
        FAILED = "failed", _("failed")

    bill = models.ForeignKey(
        TrainingBill, on_delete=models.CASCADE, related_name="qa_texts", verbose_name=_("bill")
    )
    knowledge_base = models.ForeignKey(
        KnowledgeBase, on_delete=models.CASCADE, related_name="+", verbose_name=_("knowledge base")
    )
    collection = models.ForeignKey(
        Collection, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    text = models.TextField(_("text"))
    prompt = models.TextField(_("theme"), blank=True)
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.PENDING
    )
    pairs_inserted = models.PositiveIntegerField(_("pairs inserted"), default=0)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    error = models.TextField(_("error"), blank=True)

    class Meta:
        verbose_name = _("QA text")
        verbose_name_plural = _("QA texts")
        ordering = ["id"]

    def __str__(self) -> str:
        return self.text[:80]


class BotKnowledgeBase(models.Model):
    """A bot answers from this knowledge base, searched this way."""

    bot = models.ForeignKey(
        "bots.Bot", on_delete=models.CASCADE, related_name="+", verbose_name=_("bot")
    )
    knowledge_base = models.ForeignKey(
        KnowledgeBase,
        on_delete=models.CASCADE,
        related_name="bot_links",
        verbose_name=_("knowledge base"),
    )
    search_mode = models.CharField(
        _("search mode"), max_length=20, choices=SearchMode.choices, default=SearchMode.MIXED
    )
    limit = models.PositiveIntegerField(_("limit"), default=5)
    min_score = models.FloatField(_("minimum score"), default=0.0)

    class Meta:
        verbose_name = _("bot knowledge base")
        verbose_name_plural = _("bot knowledge bases")
        constraints = [
            models.UniqueConstraint(
                fields=["bot", "knowledge_base"], name="knowledge_bot_link_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.bot} → {self.knowledge_base}"
