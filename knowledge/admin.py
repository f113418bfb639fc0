"""Admin for knowledge bases: add content (files, text, link) with progress, the item list
(search, edit, delete), training bills with live progress, and a search test per mode."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import Count
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from aiflowy.admin_pagination import EstimatedCountPaginator
from aiflowy.errors import ApiError
from knowledge.documents import DocumentError, file_chunks
from knowledge.forms import AddContentForm, SearchTestForm
from knowledge.models import (
    BotKnowledgeBase,
    Collection,
    DataItem,
    KnowledgeBase,
    QaText,
    SearchMode,
    TrainingBill,
)
from knowledge.quotes import links_cache
from knowledge.retrieval import chunk_text
from knowledge.selectors import knowledge_base_config_get
from knowledge.services import (
    collection_create,
    collection_import_start,
    data_item_save,
    data_items_delete,
    knowledge_search,
    link_text,
    qa_training_start,
    run_now,
)

# Changelists and pages with work in progress reload themselves this often (seconds).
REFRESH_SECONDS = 2


def progress_bar(done: int, total: int) -> str:
    percent = int(100 * done / total) if total else 100
    return format_html(
        '<progress max="100" value="{}" style="width: 8em"></progress> {} / {}',
        percent,
        done,
        total,
    )


class BotKnowledgeBaseInline(admin.TabularInline):
    model = BotKnowledgeBase
    extra = 0
    fields = ["bot", "search_mode", "limit", "min_score"]
    autocomplete_fields = ["bot"]


@admin.register(KnowledgeBase)
class KnowledgeBaseAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "search_mode", "embedding_model", "item_count", "updated_at"]
    list_display_links = ["id", "name"]
    search_fields = ["name", "description"]
    inlines = [BotKnowledgeBaseInline]
    change_form_template = "admin/knowledge/knowledgebase/change_form.html"
    fieldsets = [
        (None, {"fields": ["name", "description"]}),
        (
            _("Models"),
            {
                "fields": [
                    "embedding_provider",
                    "embedding_model",
                    "qa_provider",
                    "qa_model",
                    "rerank_provider",
                    "rerank_model",
                ]
            },
        ),
        (_("Chunks"), {"fields": ["chunk_size", "chunk_overlap"]}),
        (_("Search"), {"fields": ["search_mode", "search_limit", "min_score"]}),
        (_("Quotes in a bot's prompt"), {"fields": ["quote_template", "quote_prompt"]}),
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(item_total=Count("items"))

    def save_related(self, request, form, formsets, change) -> None:
        super().save_related(request, form, formsets, change)
        links_cache.invalidate()

    @admin.display(description=_("items"), ordering="item_total")
    def item_count(self, kb: KnowledgeBase) -> int:
        return kb.item_total

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path(
                "<int:pk>/add-content/",
                view(self.add_content_view),
                name="knowledge_knowledgebase_add_content",
            ),
            path(
                "<int:pk>/search-test/",
                view(self.search_test_view),
                name="knowledge_knowledgebase_search_test",
            ),
            *super().get_urls(),
        ]

    def _page(
        self, request, kb: KnowledgeBase, title: str, template: str, **context
    ) -> TemplateResponse:
        return TemplateResponse(
            request,
            template,
            {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "original": kb,
                "title": title,
                **context,
            },
        )

    def add_content_view(self, request, pk: int):
        kb = get_object_or_404(KnowledgeBase, pk=pk)
        if not self.has_change_permission(request, kb):
            return redirect("admin:knowledge_knowledgebase_changelist")
        form = AddContentForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            started = self._start_imports(request, kb, form)
            if started:
                messages.success(
                    request,
                    _("Importing %(count)s collection(s); progress is shown below.")
                    % {"count": started},
                )
                url = reverse("admin:knowledge_collection_changelist")
                return redirect(f"{url}?knowledge_base__id__exact={kb.pk}")
        return self._page(
            request,
            kb,
            _("Add content"),
            "admin/knowledge/knowledgebase/add_content.html",
            form=form,
        )

    def _start_imports(self, request, kb: KnowledgeBase, form: AddContentForm) -> int:
        sources: list[tuple[str, str, str, list[tuple[str, str]]]] = []
        try:
            for upload in form.cleaned_data["files"]:
                items = file_chunks(
                    upload.name, upload.read(), size=kb.chunk_size, overlap=kb.chunk_overlap
                )
                sources.append((upload.name, Collection.Kind.FILE, upload.name, items))
            text = (form.cleaned_data.get("text") or "").strip()
            if text:
                name = form.cleaned_data.get("text_name") or text[:40]
                chunks = chunk_text(text, size=kb.chunk_size, overlap=kb.chunk_overlap)
                sources.append((name, Collection.Kind.TEXT, "", [(c, "") for c in chunks]))
            link = form.cleaned_data.get("link")
            if link:
                page = run_now(link_text, link)
                chunks = chunk_text(page, size=kb.chunk_size, overlap=kb.chunk_overlap)
                sources.append((link, Collection.Kind.LINK, link, [(c, "") for c in chunks]))
        except DocumentError as exc:
            form.add_error(None, str(exc))
            return 0
        for name, kind, source, items in sources:
            collection = collection_create(
                knowledge_base=kb, name=name, kind=kind, source=source, total=len(items)
            )
            collection_import_start(collection.pk, items, request.user.pk)
        return len(sources)

    def search_test_view(self, request, pk: int):
        kb = get_object_or_404(KnowledgeBase, pk=pk)
        form = SearchTestForm(request.POST or None)
        results = []
        error = ""
        if request.method == "POST" and form.is_valid():
            config = knowledge_base_config_get(kb.pk)
            labels = dict(SearchMode.choices)
            for mode in form.cleaned_data["modes"]:
                if mode != SearchMode.FULL_TEXT and not config.has_embeddings:
                    results.append({"mode": labels[mode], "unavailable": True, "quotes": []})
                    continue
                try:
                    outcome = run_now(
                        knowledge_search,
                        config,
                        form.cleaned_data["text"],
                        mode=mode,
                        limit=form.cleaned_data["limit"],
                        min_score=form.cleaned_data.get("similarity") or 0.0,
                    )
                except ApiError as exc:
                    error = exc.message
                    break
                results.append(
                    {
                        "mode": labels[mode],
                        "quotes": outcome.quotes,
                        "ms": round(outcome.seconds * 1000, 1),
                    }
                )
        return self._page(
            request,
            kb,
            _("Search test"),
            "admin/knowledge/knowledgebase/search_test.html",
            form=form,
            results=results,
            error=error,
        )


class RefreshingChangeList:
    """A changelist that reloads itself while something in it is still running."""

    running_statuses: tuple[str, ...] = ()

    def changelist_view(self, request, extra_context=None):
        running = self.model.objects.filter(status__in=self.running_statuses).exists()
        extra_context = {
            **(extra_context or {}),
            "refresh_seconds": REFRESH_SECONDS if running else 0,
        }
        return super().changelist_view(request, extra_context)


@admin.register(Collection)
class CollectionAdmin(RefreshingChangeList, admin.ModelAdmin):
    running_statuses = (Collection.Status.PENDING, Collection.Status.RUNNING)
    change_list_template = "admin/knowledge/refreshing_change_list.html"
    list_display = ["id", "name", "knowledge_base", "kind", "status", "progress", "created_at"]
    list_filter = ["knowledge_base", "kind", "status"]
    search_fields = ["name", "source"]
    readonly_fields = [
        "knowledge_base",
        "name",
        "kind",
        "source",
        "status",
        "chunks_total",
        "chunks_done",
        "error",
        "created_at",
    ]

    @admin.display(description=_("progress"))
    def progress(self, collection: Collection) -> str:
        return progress_bar(collection.chunks_done, collection.chunks_total)

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(DataItem)
class DataItemAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "question",
        "answer",
        "knowledge_base",
        "collection",
        "tokens",
        "updated_at",
    ]
    list_filter = ["knowledge_base"]
    list_select_related = ["knowledge_base", "collection"]
    search_fields = ["q", "a", "source"]
    fields = [
        "knowledge_base",
        "collection",
        "q",
        "a",
        "source",
        "indexes",
        "tokens",
        "added_by_key",
        "added_by_user",
    ]
    readonly_fields = ["collection", "tokens", "added_by_key", "added_by_user"]
    paginator = EstimatedCountPaginator
    show_full_result_count = False

    @admin.display(description=_("question / content"))
    def question(self, item: DataItem) -> str:
        return item.q[:80]

    @admin.display(description=_("answer / supplement"))
    def answer(self, item: DataItem) -> str:
        return item.a[:80]

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, "knowledge_base"] if obj else self.readonly_fields

    def save_model(self, request, obj, form, change) -> None:
        if not change:
            obj.added_by_user = request.user
        data_item_save(obj)

    def delete_model(self, request, obj) -> None:
        data_items_delete([obj.pk])

    def delete_queryset(self, request, queryset) -> None:
        data_items_delete(list(queryset.values_list("pk", flat=True)))


class QaTextInline(admin.TabularInline):
    model = QaText
    extra = 0
    can_delete = False
    fields = ["id", "status", "attempts", "pairs_inserted", "error", "text_preview"]
    readonly_fields = fields

    @admin.display(description=_("text"))
    def text_preview(self, text: QaText) -> str:
        return text.text[:120]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(TrainingBill)
class TrainingBillAdmin(RefreshingChangeList, admin.ModelAdmin):
    running_statuses = (TrainingBill.Status.RUNNING,)
    change_list_template = "admin/knowledge/refreshing_change_list.html"
    change_form_template = "admin/knowledge/trainingbill/change_form.html"
    list_display = [
        "id",
        "name",
        "knowledge_base",
        "mode",
        "status",
        "progress",
        "inserted",
        "skipped",
        "failed",
        "tokens",
        "created_at",
    ]
    list_filter = ["status", "mode", "knowledge_base"]
    search_fields = ["name"]
    inlines = [QaTextInline]
    readonly_fields = [
        "id",
        "name",
        "knowledge_base",
        "mode",
        "status",
        "items_in",
        "inserted",
        "skipped",
        "failed",
        "tokens",
        "errors",
        "api_key",
        "created_at",
        "updated_at",
    ]
    actions = ["retry_qa"]

    @admin.display(description=_("progress"))
    def progress(self, bill: TrainingBill) -> str:
        if bill.mode != TrainingBill.Mode.QA:
            return progress_bar(bill.inserted + bill.skipped, bill.items_in)
        total = bill.qa_texts.count()
        done = bill.qa_texts.exclude(status=QaText.Status.PENDING).count()
        return progress_bar(done, total)

    @admin.action(description=_("Retry the failed QA texts"))
    def retry_qa(self, request, queryset) -> None:
        for bill in queryset.filter(mode=TrainingBill.Mode.QA):
            qa_training_start(bill.pk)
        messages.success(request, _("QA training started again."))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        running = TrainingBill.objects.filter(
            pk=object_id, status=TrainingBill.Status.RUNNING
        ).exists()
        extra_context = {
            **(extra_context or {}),
            "refresh_seconds": REFRESH_SECONDS if running else 0,
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return request.method == "GET" or obj is None
