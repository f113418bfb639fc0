"""Every admin page an operator opens, in zh-hans, shows no untranslated project string.

With the demo data (`setupdemo`, a chat, a FastGPT conversation, workflow runs, a training
bill with pushed items, a search engine, a share link a visitor asked through, a run waiting
for a confirm), the test logs in with a Chinese browser's language, walks every admin page it
can reach by links (index, app pages, every registered model's changelist, add and change
pages, and their own pages: graph, test run, import, the bot's key section, a knowledge base's
add-content and search-test pages, the usage page, the confirm form of a suspended run) and
posts the forms an operator posts, valid and invalid (a workflow test run, a search test in
every mode, added content, new search engines, share links and knowledge bases refused, a
confirmed run, an invalid import, admin actions). On each page it reads the visible text
(text nodes, `title`, `placeholder`, button labels) and fails on any text that is, in English,
one of the project's translatable strings (the msgids of its catalogs) or a name, help text or
choice label of its models.
"""

from __future__ import annotations

import io
import json
import re
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client
from django.utils import translation
from django.utils.text import capfirst

from apikeys.models import ApiKey
from apikeys.services import api_key_create
from bots.models import Bot
from chat.models import Message
from demo.workflows import DEMO_WORKFLOW_TITLE
from knowledge.models import DataItem, KnowledgeBase, SearchMode, TrainingBill
from shares.models import ShareConversation, ShareLink
from tests.conftest import ROOT, wait_until
from tests.project.catalogs import po_entries
from workflows.definitions import workflow_create
from workflows.models import SearchEngine, Workflow, WorkflowRun

PROJECT_APPS = ("apikeys", "bots", "chat", "workflows", "demo", "knowledge", "shares")
# Links the walk does not follow: they change state or leave the admin's pages.
SKIPPED = re.compile(r"/(logout|delete|password|jsi18n|export)/|/r/\d+/|\?|#|/history/")


def third_party_admin() -> tuple[set[str], set[str]]:
    """The admin pages and names of installed apps that are neither the project's nor Django's
    (Procrastinate's job viewer, installed with the PostgreSQL job queue). Their code marks no
    string for translation, so the project cannot translate them: their pages are not walked,
    and their own app and model names, shown in the admin's navigation, are not failures."""
    pages: set[str] = set()
    names: set[str] = set()
    for config in apps.get_app_configs():
        if config.label in (*PROJECT_APPS, "aiflowy") or config.name.startswith("django."):
            continue
        names.add(str(config.verbose_name))
        pages.add(f"/admin/{config.label}/")
        for model in config.get_models():
            names |= {capfirst(model._meta.verbose_name), capfirst(model._meta.verbose_name_plural)}
    return pages, names


THIRD_PARTY_PAGES, THIRD_PARTY_NAMES = third_party_admin()


def project_msgids() -> set[str]:
    """The project's own translatable strings, except those that read the same in Chinese
    (their msgstr is the msgid: "#", names of formats…)."""
    return {
        msgid
        for catalog in ROOT.glob("*/locale/zh_Hans/LC_MESSAGES/django.po")
        for msgid, translation in po_entries(catalog).items()
        if translation != msgid
    }


def model_labels() -> set[str]:
    """The English names, help texts and choice labels of the project's models."""
    labels: set[str] = set()
    with translation.override("en"):
        for app in PROJECT_APPS:
            for model in apps.get_app_config(app).get_models():
                labels |= {str(model._meta.verbose_name), str(model._meta.verbose_name_plural)}
                for field in model._meta.get_fields():
                    for text in (
                        getattr(field, "verbose_name", ""),
                        getattr(field, "help_text", ""),
                    ):
                        if text:
                            labels.add(str(text))
                    for _value, label in getattr(field, "flatchoices", None) or ():
                        labels.add(str(label))
    return {label for label in labels if re.search("[A-Za-z]{2}", label)}


class VisibleText(HTMLParser):
    """Text nodes outside scripts and styles, plus `title`/`placeholder`/`aria-label` and the
    labels of buttons; and the admin links on the page."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []
        self.links: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag in ("script", "style", "pre", "textarea", "code"):
            self._hidden += 1
        for name in ("title", "placeholder", "aria-label"):
            if attributes.get(name):
                self.texts.append(attributes[name])
        if (
            tag == "input"
            and attributes.get("type") in ("submit", "button")
            and attributes.get("value")
        ):
            self.texts.append(attributes["value"])
        if tag == "a" and attributes.get("href"):
            self.links.append(attributes["href"])

    def handle_endtag(self, tag):
        if tag in ("script", "style", "pre", "textarea", "code") and self._hidden:
            self._hidden -= 1

    def handle_data(self, data):
        if not self._hidden and data.strip():
            self.texts.append(data)


def _normal(text: str) -> str:
    return " ".join(text.split()).strip().rstrip(":：").strip()


# start → confirm (pick one of the caller's cities) → end: a run of it waits for an operator.
CONFIRM_FLOW = {
    "nodes": [
        {
            "id": "start_1",
            "type": "startNode",
            "data": {
                "title": "开始",
                "parameters": [{"name": "cities", "dataType": "Array", "required": True}],
            },
        },
        {
            "id": "confirm_1",
            "type": "confirmNode",
            "data": {
                "title": "确认",
                "message": "请选择城市",
                "confirms": [
                    {
                        "name": "city",
                        "description": "城市",
                        "dataType": "String",
                        "refType": "ref",
                        "ref": "start_1.cities",
                    }
                ],
            },
        },
        {
            "id": "end_1",
            "type": "endNode",
            "data": {"outputDefs": [{"name": "city", "refType": "ref", "ref": "confirm_1.city"}]},
        },
    ],
    "edges": [
        {"id": "e1", "source": "start_1", "target": "confirm_1"},
        {"id": "e2", "source": "confirm_1", "target": "end_1"},
    ],
}


@pytest.fixture
def demo_admin(http, monkeypatch) -> Client:
    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "OPENAI_MODEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DEMO_ADMIN_PASSWORD", "pw-for-tests")
    out = io.StringIO()
    call_command("setupdemo", stdout=out)
    key = re.search(r"shown once, copy it now\): (af-\S+)", out.getvalue()).group(1)
    auth = {"Authorization": f"Bearer {key}"}
    question = [{"role": "user", "content": "你好"}]
    bot_id = Bot.objects.get(name="demo").pk
    http.post(
        "/api/v1/aiBot/externalChat", headers=auth, json={"botId": bot_id, "messages": question}
    )
    http.post("/v1/chat/completions", headers=auth, json={"chatId": "c1", "messages": question})
    workflow = Workflow.objects.get(title=DEMO_WORKFLOW_TITLE)
    http.post(
        "/api/v1/workflow/external/run",
        headers=auth,
        json={"id": workflow.id, "variables": {"topic": "the sea"}},
    )
    wait_until(lambda: Message.objects.filter(role="assistant").count() >= 2)
    wait_until(lambda: WorkflowRun.objects.exclude(finished_at=None).exists())
    ApiKey.objects.create(name="second", prefix="af-xxxxxx", key_hash="0" * 64)
    # The pages of knowledge bases, search engines, share links and suspended runs, with
    # something on them: a training bill with pushed items, an engine, a share link a visitor
    # asked through, a run waiting for a confirm.
    kb = KnowledgeBase.objects.get()
    bill = http.post(
        "/api/support/wallet/bill/createTrainingBill", headers=auth, json={"name": "导入"}
    )
    pushed = http.post(
        "/api/core/dataset/data/pushData",
        headers=auth,
        json={
            "kbId": kb.pk,
            "mode": "index",
            "billId": bill.json()["data"],
            "data": [{"q": "公司几点上班？", "a": "九点。"}],
        },
    )
    assert pushed.json()["data"] == {"insertLen": 1}, pushed.text
    SearchEngine.objects.create(name="searx", title="SearX", url="https://searx.example")
    link = ShareLink.objects.create(bot=Bot.objects.get(name="demo"), name="公开")
    http.get("/chat/share", params={"shareId": link.share_id})
    asked = http.post(
        "/api/chat-page/share/answer",
        json={"shareId": link.share_id, "authToken": "", "chatId": "", "question": "你好"},
    )
    assert asked.status_code == 200, asked.text
    wait_until(ShareConversation.objects.exists)
    confirming = workflow_create(definition=CONFIRM_FLOW, title="确认城市")
    run_key = api_key_create(name="确认运行", workflow_ids=[confirming.pk])[1]
    suspended = http.post(
        "/api/v1/workflow/external/run",
        headers={"Authorization": f"Bearer {run_key}"},
        json={"id": confirming.pk, "variables": {"cities": ["厦门", "福州"]}},
    )
    assert suspended.json()["status"] == "suspended", suspended.text
    client = Client(headers={"accept-language": "zh-CN,zh;q=0.9"})
    client.force_login(get_user_model().objects.get(username="admin"))
    return client


# Names that read the same in both languages (a search engine's HTTP method and its URL).
SAME_IN_BOTH = {"ID", "API", "externalChat", "GET", "POST", "URL"}


ENGLISH_PHRASE = re.compile(r"^[A-Za-z][A-Za-z'’,()-]*( [A-Za-z'’,()-]+)+[.!?]?$")


def data_texts() -> set[str]:
    """What the demo data itself says (names, descriptions, prompts…): shown as entered."""
    found: set[str] = set()
    for app in PROJECT_APPS:
        for model in apps.get_app_config(app).get_models():
            for obj in model.objects.all():
                found.add(_normal(str(obj)))
                for field in model._meta.concrete_fields:
                    value = getattr(obj, field.attname)
                    if isinstance(value, str):
                        found |= {_normal(line) for line in value.splitlines()}
    return found


def _is_data(text: str, data: set[str]) -> bool:
    """Data, or the start of data a changelist column cut short."""
    return text in data or (len(text) >= 40 and any(line.startswith(text) for line in data))


def _untranslated(page: str, english: set[str], data: set[str]) -> list[str]:
    """Texts that are project msgids or model labels in English, or English phrases that are
    neither data nor Django's own."""
    parser = VisibleText()
    parser.feed(page)
    texts = {_normal(t) for t in parser.texts} - SAME_IN_BOTH - THIRD_PARTY_NAMES
    return sorted(
        t for t in texts if t in english or (ENGLISH_PHRASE.match(t) and not _is_data(t, data))
    )


def test_every_admin_page_in_zh_hans_shows_no_untranslated_project_string(demo_admin):
    english = project_msgids() | model_labels()
    data = data_texts()
    assert {"allowed bots", "top p", "Disable selected keys"} <= english
    project_registry = [
        model
        for model in admin.site._registry
        if f"/admin/{model._meta.app_label}/" not in THIRD_PARTY_PAGES
    ]
    start = ["/admin/"]
    for model in project_registry:
        info = (model._meta.app_label, model._meta.model_name)
        start.append(f"/admin/{info[0]}/{info[1]}/")
        start.append(f"/admin/{info[0]}/{info[1]}/add/")
        first = model.objects.order_by("pk").first()
        if first is not None:
            start.append(f"/admin/{info[0]}/{info[1]}/{first.pk}/change/")
    seen: set[str] = set()
    queue = list(dict.fromkeys(start))
    problems: dict[str, list[str]] = {}
    while queue and len(seen) < 250:
        url = queue.pop(0)
        if url in seen:
            continue
        seen.add(url)
        response = demo_admin.get(url)
        if response.status_code in (302, 403, 404, 405):
            continue
        assert response.status_code == 200, (url, response.status_code)
        page = response.content.decode()
        assert '<html lang="zh-hans"' in page, url
        assert "增加" not in page, f"{url}: the project says 新增, not 增加"
        if url.endswith("/add/"):
            assert re.search(r"<h1>新增 ", page), url
        if url.endswith("/add-content/"):
            assert "<h1>新增内容</h1>" in page, url
        if found := _untranslated(page, english, data):
            problems[url] = found
        parser = VisibleText()
        parser.feed(page)
        for link in parser.links:
            target = urlsplit(urljoin(url, link))
            if (
                target.path.startswith("/admin/")
                and not SKIPPED.search(link)
                and not target.path.startswith(tuple(THIRD_PARTY_PAGES))
            ):
                queue.append(target.path)

    workflow = Workflow.objects.get(title=DEMO_WORKFLOW_TITLE)
    kb = KnowledgeBase.objects.get()
    run = WorkflowRun.objects.get(status=WorkflowRun.Status.SUSPENDED)
    kb_page = f"/admin/knowledge/knowledgebase/{kb.pk}"
    confirm_page = f"/admin/workflows/workflowrun/{run.pk}/confirm/"
    # Each form posted as an operator would: with results, refused (errors), or an action.
    posted = {
        f"/admin/workflows/workflow/{workflow.pk}/test-run/": {"var-topic": "海"},
        f"/admin/workflows/workflow/{workflow.pk}/test-run/?missing": {},
        "/admin/apikeys/apikey/": {
            "action": "disable_keys",
            "_selected_action": [ApiKey.objects.first().pk],
        },
        f"{kb_page}/search-test/": {
            "text": "几点上班",
            "limit": 5,
            "modes": [mode for mode, _label in SearchMode.choices],
        },
        f"{kb_page}/search-test/?refused": {"text": "", "limit": 0},
        f"{kb_page}/add-content/?refused": {"text_name": "空"},
        f"{kb_page}/add-content/": {"text": "午休一小时。", "text_name": "作息"},
        "/admin/knowledge/knowledgebase/add/?refused": {},
        "/admin/knowledge/trainingbill/": {
            "action": "retry_qa",
            "_selected_action": [TrainingBill.objects.first().pk],
        },
        "/admin/workflows/searchengine/add/?refused": {"name": "x y", "url": "not a url"},
        "/admin/shares/sharelink/add/?refused": {},
        "/admin/shares/sharelink/": {
            "action": "disable_links",
            "_selected_action": [ShareLink.objects.first().pk],
        },
        f"{confirm_page}?refused": {"confirm-city__confirm_1": "北京"},
        confirm_page: {"confirm-confirm__confirm_1": "yes", "confirm-city__confirm_1": "福州"},
    }
    for url, form in posted.items():
        response = demo_admin.post(url.split("?")[0], form, follow=True)
        assert response.status_code == 200, (url, response.status_code)
        refused = url.endswith("?refused")
        page = response.content.decode()
        assert refused == ("errorlist" in page or "errornote" in page), url
        if found := _untranslated(page, english, data):
            problems[f"POST {url}"] = found
    run.refresh_from_db()
    assert run.status == WorkflowRun.Status.SUCCEEDED
    searched = demo_admin.post(f"{kb_page}/search-test/", posted[f"{kb_page}/search-test/"])
    assert searched.content.decode().count('class="module search-results"') == 3
    assert "公司几点上班？" in searched.content.decode()
    # The workflow checker's findings, in Chinese too.
    invalid = SimpleUploadedFile("bad.json", json.dumps({"nodes": []}).encode())
    imported = demo_admin.post("/admin/workflows/workflow/import/", {"file": invalid})
    assert "工作流定义无效：工作流没有节点" in imported.content.decode()
    visited_models = {f"/admin/{m._meta.app_label}/{m._meta.model_name}/" for m in project_registry}
    assert visited_models <= seen
    own_pages = {
        f"/admin/workflows/workflow/{workflow.pk}/test-run/",
        f"/admin/workflows/workflow/{workflow.pk}/graph/",
        "/admin/workflows/workflow/import/",
        f"/admin/bots/bot/{Bot.objects.get(name='demo').pk}/change/",
        f"{kb_page}/change/",
        f"{kb_page}/add-content/",
        f"{kb_page}/search-test/",
        f"/admin/knowledge/trainingbill/{TrainingBill.objects.first().pk}/change/",
        f"/admin/knowledge/dataitem/{DataItem.objects.get(q='公司几点上班？').pk}/change/",
        "/admin/knowledge/knowledgebase/add/",
        "/admin/workflows/searchengine/add/",
        f"/admin/workflows/searchengine/{SearchEngine.objects.get().pk}/change/",
        "/admin/chat/conversation/usage/",
        "/admin/shares/sharelink/add/",
        f"/admin/shares/sharelink/{ShareLink.objects.get().pk}/change/",
        "/admin/shares/shareconversation/",
        f"/admin/workflows/workflowrun/{run.pk}/change/",
        confirm_page,
    }
    assert own_pages <= seen, own_pages - seen
    assert problems == {}, "\n".join(f"{u}: {p}" for u, p in problems.items())
