"""Every admin page an operator opens, in zh-hans, shows no untranslated project string.

With the demo data (`setupdemo`, a chat, a FastGPT conversation, workflow runs), the test logs
in with a Chinese browser's language, walks every admin page it can reach by links (index,
app pages, every registered model's changelist, add and change pages, and their own pages:
graph, test run, import, the bot's key section) and posts the pages that show results (a
workflow test run, an invalid import, an admin action). On each page it reads the visible text
(text nodes, `title`, `placeholder`, button labels) and fails on any text that is, in English,
one of the project's translatable strings (the msgids of its catalogs) or a name, help text or
choice label of its models.
"""

from __future__ import annotations

import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client
from django.utils import translation

from apikeys.models import ApiKey
from bots.models import Bot
from chat.models import Message
from tests.conftest import ROOT, wait_until
from workflows.models import Workflow, WorkflowRun

PROJECT_APPS = ("apikeys", "bots", "chat", "workflows", "demo")
# Links the walk does not follow: they change state or leave the admin's pages.
SKIPPED = re.compile(r"/(logout|delete|password|jsi18n|export)/|/r/\d+/|\?|#|/history/")
MSGID = re.compile(r'^msgid ((?:".*"\n)+)', re.M)
MSGSTR = re.compile(r'^msgstr ((?:".*"\n)+)', re.M)


def _po_strings(text: str, pattern: re.Pattern) -> list[str]:
    return [
        "".join(re.findall(r'"(.*)"', match.group(1))).replace('\\"', '"').replace("\\n", "\n")
        for match in pattern.finditer(text)
    ]


def project_msgids() -> set[str]:
    """The project's own translatable strings, except those that read the same in Chinese
    (their msgstr is the msgid: "#", names of formats…)."""
    found: set[str] = set()
    for catalog in ROOT.glob("*/locale/zh_Hans/LC_MESSAGES/django.po"):
        text = Path(catalog).read_text("utf-8")
        for entry in text.split("\n\n"):
            ids, strs = _po_strings(entry + "\n", MSGID), _po_strings(entry + "\n", MSGSTR)
            if ids and ids[0] and not (strs and strs[0] == ids[0]):
                found.add(ids[0])
    return found


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
    workflow = Workflow.objects.get()
    http.post(
        "/api/v1/workflow/external/run",
        headers=auth,
        json={"id": workflow.id, "variables": {"topic": "the sea"}},
    )
    wait_until(lambda: Message.objects.filter(role="assistant").count() >= 2)
    wait_until(lambda: WorkflowRun.objects.exclude(finished_at=None).exists())
    ApiKey.objects.create(name="second", prefix="af-xxxxxx", key_hash="0" * 64)
    client = Client(headers={"accept-language": "zh-CN,zh;q=0.9"})
    client.force_login(get_user_model().objects.get(username="admin"))
    return client


# Names that read the same in both languages.
SAME_IN_BOTH = {"ID", "API", "externalChat"}


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


def _untranslated(page: str, english: set[str], data: set[str]) -> list[str]:
    """Texts that are project msgids or model labels in English, or English phrases that are
    neither data nor Django's own."""
    parser = VisibleText()
    parser.feed(page)
    texts = {_normal(t) for t in parser.texts} - SAME_IN_BOTH
    return sorted(t for t in texts if t in english or (ENGLISH_PHRASE.match(t) and t not in data))


def test_every_admin_page_in_zh_hans_shows_no_untranslated_project_string(demo_admin):
    english = project_msgids() | model_labels()
    data = data_texts()
    assert {"allowed bots", "top p", "Disable selected keys"} <= english
    start = ["/admin/"]
    for model in admin.site._registry:
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
        if found := _untranslated(page, english, data):
            problems[url] = found
        parser = VisibleText()
        parser.feed(page)
        for link in parser.links:
            target = urlsplit(urljoin(url, link))
            if target.path.startswith("/admin/") and not SKIPPED.search(link):
                queue.append(target.path)

    workflow = Workflow.objects.get()
    posted = {
        f"/admin/workflows/workflow/{workflow.pk}/test-run/": {"var-topic": "海"},
        f"/admin/workflows/workflow/{workflow.pk}/test-run/?missing": {},
        "/admin/apikeys/apikey/": {
            "action": "disable_keys",
            "_selected_action": [ApiKey.objects.first().pk],
        },
    }
    for url, data in posted.items():
        response = demo_admin.post(url.split("?")[0], data, follow=True)
        if found := _untranslated(response.content.decode(), english, data):
            problems[f"POST {url}"] = found
    # The workflow checker's findings, in Chinese too.
    invalid = SimpleUploadedFile("bad.json", json.dumps({"nodes": []}).encode())
    imported = demo_admin.post("/admin/workflows/workflow/import/", {"file": invalid})
    assert "工作流定义无效：工作流没有节点" in imported.content.decode()
    visited_models = {
        f"/admin/{m._meta.app_label}/{m._meta.model_name}/" for m in admin.site._registry
    }
    assert visited_models <= seen
    own_pages = {
        f"/admin/workflows/workflow/{workflow.pk}/test-run/",
        f"/admin/workflows/workflow/{workflow.pk}/graph/",
        "/admin/workflows/workflow/import/",
        f"/admin/bots/bot/{Bot.objects.get(name='demo').pk}/change/",
    }
    assert own_pages <= seen, own_pages - seen
    assert problems == {}, "\n".join(f"{u}: {p}" for u, p in problems.items())
