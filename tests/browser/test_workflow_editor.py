"""An operator draws a workflow in Tinyflow's editor (vendored `@tinyflow-ai/ui`) on the
workflow change page, saves it, and runs it from the admin's test-run page, in Chromium."""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from aiflowy.testing.servers import start_daphne, stop_process
from knowledge.models import KnowledgeBase
from knowledge.selectors import KnowledgeBaseConfig
from knowledge.services import NewItem, data_items_insert_now
from tests.conftest import ROOT, _database_url, wait_until
from tests.workflows.test_search_engine import FakeSearch
from workflows.admin import STARTER_DEFINITION
from workflows.definitions import workflow_create
from workflows.engine import parse_definition
from workflows.models import SearchEngine, Workflow, WorkflowRun

CHROMIUM = Path("/usr/bin/chromium")
STATIC = ROOT / "workflows" / "static"

pytestmark = pytest.mark.browser

if not CHROMIUM.exists() and not os.environ.get("CI"):
    pytest.skip("Debian's chromium is not installed (CI installs it)", allow_module_level=True)


@pytest.fixture
def operator(transactional_db):
    return get_user_model().objects.create_superuser("operator", password="s3cret-pass")


@pytest.fixture
def workflow(transactional_db) -> Workflow:
    return workflow_create(title="画图", definition=STARTER_DEFINITION)


def serve_static(route) -> None:
    """Production serves /static/ from a web server (docs/deploy.md); the test does the same
    from the app's static directory, so the page loads the vendored files unchanged."""
    relative = route.request.url.split("/static/", 1)[1].split("?", 1)[0]
    path = STATIC / relative
    if not path.is_file():
        route.fulfill(status=404, body="")
        return
    kind = "text/css" if path.suffix == ".css" else "application/javascript"
    route.fulfill(status=200, body=path.read_bytes(), headers={"Content-Type": kind})


@pytest.fixture
def fake_search() -> Iterator[FakeSearch]:
    """A loopback search server (SearXNG's JSON API) for the search and HTTP nodes."""
    service = FakeSearch()
    service.thread.start()
    yield service
    service.server.shutdown()
    service.server.server_close()


@pytest.fixture
def knowledge_base(transactional_db) -> KnowledgeBase:
    kb = KnowledgeBase.objects.create(name="手册", search_mode="fullTextRecall")
    data_items_insert_now(
        KnowledgeBaseConfig.from_model(kb),
        [NewItem(q="Tinyflow draws workflows", a="in the admin's editor")],
    )
    return kb


@pytest.fixture(scope="module")
def editor_server_url(django_db_setup, django_db_blocker) -> Iterator[str]:
    """Daphne on the test database whose HTTP nodes may call loopback addresses, so the
    drawn workflow's HTTP node can reach the fake search server (production refuses)."""
    with django_db_blocker.unblock():
        database_url = _database_url()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.test_settings",
        "DATABASE_URL": database_url,
        "AIFLOWY_WORKFLOW_HTTP_ALLOW_PRIVATE": "true",
    }
    process, url = start_daphne(env=env, log_path=ROOT / ".pytest_cache" / "daphne-editor.log")
    yield url
    stop_process(process)


@pytest.fixture
def browser_page(editor_server_url, operator, workflow, bot, knowledge_base, fake_search):
    """Set up after the database rows it needs: Playwright's sync API runs an event loop in
    this thread, and Django refuses ORM calls while one runs."""
    SearchEngine.objects.create(
        name="searx", title="SearX", kind="searxng", url=fake_search.url, allow_private=True
    )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"],
        )
        context = browser.new_context(
            locale="zh-CN", base_url=editor_server_url, viewport={"width": 1500, "height": 1000}
        )
        context.route("**/static/workflows/**", serve_static)
        page = context.new_page()
        page.set_default_timeout(15_000)
        yield page
        context.close()
        browser.close()


def test_operator_draws_saves_and_runs_a_workflow_and_every_offered_node_runs(
    browser_page, workflow, bot, knowledge_base, fake_search
):
    page = browser_page
    page.goto("/admin/login/")
    page.fill("#id_username", "operator")
    page.fill("#id_password", "s3cret-pass")
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")

    page.goto(f"/admin/workflows/workflow/{workflow.pk}/change/")
    page.wait_for_selector(".svelte-flow__node-startNode")
    # The JSON stays reachable, behind a button; the editor is the main view.
    assert not page.locator("#id_definition").is_visible()
    # The editor's lists come from the project.
    config = json.loads(page.text_content("#workflow-editor-config"))
    assert config["llm"] == [{"value": bot.pk, "label": bot.name}]
    assert config["searchEngine"] == [{"value": "searx", "label": "SearX"}]
    assert config["knowledge"] == [{"value": knowledge_base.pk, "label": "手册"}]
    offered = page.locator(".tf-toolbar-container-base .tf-btn")
    assert offered.count() == 10 - len(config["hiddenNodes"])

    # Drag a template node onto the canvas.
    offered.filter(has_text="内容模板").drag_to(
        page.locator(".svelte-flow__pane"), target_position={"x": 560, "y": 520}
    )
    template = page.locator(".svelte-flow__node-templateNode")
    template.wait_for()
    # Connect start → template → end.
    page.locator(".svelte-flow__node-startNode .svelte-flow__handle.source").drag_to(
        template.locator(".svelte-flow__handle.target")
    )
    template.locator(".svelte-flow__handle.source").drag_to(
        page.locator(".svelte-flow__node-endNode .svelte-flow__handle.target")
    )
    # Set its template, then make the end node output it.
    template.locator(".tf-collapse-item-title").evaluate("title => title.click()")
    field = template.locator("textarea[placeholder='请输入模板内容']")
    field.fill("#for(w : start.text.split(' '))#(w.toUpperCase())#if(!for.last)-#end#end!")
    field.dispatch_event("change")
    end = page.locator(".svelte-flow__node-endNode")
    end.locator(".tf-collapse-item-title").evaluate("title => title.click()")
    end.locator(".tf-select-input").first.evaluate("select => select.click()")
    end.locator(".tf-select-content-item", has_text="output").first.evaluate("i => i.click()")

    with page.expect_navigation():
        page.click("input[name=_continue]")
    errors = page.locator(".errorlist, .errornote").all_text_contents()
    assert errors == [], errors
    page.wait_for_selector(".messagelist .success", state="attached")

    # Playwright's event loop runs in this thread: read the database from another one.
    with ThreadPoolExecutor(1) as thread:
        stored = thread.submit(lambda: Workflow.objects.get(pk=workflow.pk).definition).result()
    definition = parse_definition(stored)
    template_node = next(n for n in definition.nodes.values() if n.type == "templateNode")
    assert {(e.source, e.target) for e in definition.edges} >= {
        ("start", template_node.id),
        (template_node.id, "end"),
    }

    page.goto(f"/admin/workflows/workflow/{workflow.pk}/test-run/")
    page.fill("#id_var-text", "hello tiny flow")
    page.click("input[type=submit]")
    result = json.loads(page.text_content(".run-result"))
    assert result == {"text": "HELLO-TINY-FLOW!"}

    every_offered_node_type_saves_and_runs(
        page, workflow, {"bot": bot.pk, "kb": knowledge_base.pk, "url": fake_search.url}
    )


# What an operator must fill in before a freshly dropped node can run, per type, given the
# project's bot and knowledge base ids and the loopback fake search server's URL.
REQUIRED_SETTINGS = {
    "llmNode": lambda project: {"llmId": project["bot"], "userPrompt": "Say hi"},
    "searchEngineNode": lambda project: {"engine": "searx", "keyword": "news"},
    "httpNode": lambda project: {
        "url": f"{project['url']}/search?q=x&format=json",
        "method": "get",
    },
    # The editor proposes QLExpress; only JavaScript runs here.
    "codeNode": lambda project: {"engine": "js", "code": "_result.x = 1;"},
    "templateNode": lambda project: {"template": "#(1 + 1)"},
    "knowledgeNode": lambda project: {"knowledgeId": project["kb"], "keyword": "tinyflow"},
    "loopNode": lambda project: {"loopVars": [{"name": "times", "refType": "fixed", "value": "2"}]},
    "confirmNode": lambda project: {"message": "继续？"},
}


def every_offered_node_type_saves_and_runs(page, workflow, project: dict) -> None:
    """Part of the test above: the live server caches content type ids, which a second test
    (after the database is emptied) would no longer match when the admin logs a change."""
    page.goto(f"/admin/workflows/workflow/{workflow.pk}/change/")
    page.wait_for_selector(".svelte-flow__node-startNode")

    offered = page.locator(".tf-toolbar-container-base .tf-btn")
    for index in range(offered.count()):
        offered.nth(index).drag_to(
            page.locator(".svelte-flow__pane"), target_position={"x": 300 + 60 * index, "y": 600}
        )
        page.wait_for_timeout(200)
    data = page.evaluate("() => window.workflowEditor.getData()")
    dropped = [n for n in data["nodes"] if n["id"] not in ("start", "end")]
    offered_types = {n["type"] for n in dropped}
    # Start and end are offered too (a workflow keeps exactly one of each); nothing else.
    assert offered_types >= set(REQUIRED_SETTINGS)
    assert offered_types <= {"startNode", "endNode", *REQUIRED_SETTINGS}

    # Keep one node of each runnable type, chain them, fill what each needs, and save.
    chain = [n for n in dropped if n["type"] in REQUIRED_SETTINGS]
    for node in chain:
        node["data"].update(REQUIRED_SETTINGS[node["type"]](project))
    ids = ["start", *(n["id"] for n in chain), "end"]
    data["nodes"] = [n for n in data["nodes"] if n["id"] in ids]
    data["edges"] = [
        {"id": f"e{i}", "source": source, "target": target}
        for i, (source, target) in enumerate(itertools.pairwise(ids))
    ]
    page.evaluate("data => window.workflowEditor.setData(data)", data)
    page.wait_for_function(
        "count => window.workflowEditor.getData().nodes.length === count"
        " && document.querySelectorAll('.svelte-flow__node').length === count",
        arg=len(ids),
    )
    with page.expect_navigation():
        page.click("input[name=_continue]")
    errors = page.locator(".errorlist, .errornote").all_text_contents()
    assert errors == [], errors
    expected = {"startNode", "endNode", *REQUIRED_SETTINGS}

    def saved_types() -> set[str]:
        definition = Workflow.objects.get(pk=workflow.pk).definition
        return {n.type for n in parse_definition(definition).nodes.values()}

    with ThreadPoolExecutor(1) as thread:
        assert thread.submit(wait_until, lambda: saved_types() == expected).result()

    # Run it from the test-run page: every node runs, then the run waits at the confirm node.
    page.goto(f"/admin/workflows/workflow/{workflow.pk}/test-run/")
    page.fill("#id_var-text", "hello")
    page.click("input[type=submit]")
    outcome = page.get_attribute(".run-status", "data-status")
    assert outcome == "suspended", page.text_content("#test-run-outcome")
    steps = [
        (
            row.locator("td").nth(2).text_content(),
            row.locator("td").nth(3).get_attribute("data-status"),
        )
        for row in page.locator(".run-step").all()
    ]
    succeeded = {node_type for node_type, status in steps if status == "succeeded"}
    assert succeeded >= expected - {"confirmNode", "endNode"}, steps
    assert ("confirmNode", "suspended") in steps, steps

    # An operator confirms it from the run's page; it then runs to its end.
    run_link = page.locator("#test-run-outcome a[href*='/workflowrun/']")
    run_id = run_link.text_content().strip()
    run_link.click()
    page.click("a.button[href$='/confirm/']")
    page.select_option("select[name^='confirm-confirm__']", "yes")
    with page.expect_navigation():
        page.click("input[type=submit]")
    page.wait_for_selector(".messagelist .success", state="attached")

    def finished_run() -> tuple[str, dict[str, dict]]:
        run = WorkflowRun.objects.get(run_id=run_id)
        return run.status, {
            step.node_type: step.outputs for step in run.steps.all() if step.status == "succeeded"
        }

    with ThreadPoolExecutor(1) as thread:
        status, outputs = thread.submit(finished_run).result()
    assert status == "succeeded"
    assert set(outputs) >= expected - {"startNode"}
    # The knowledge node found the knowledge base's item; the person's answer reached the run.
    assert outputs["knowledgeNode"]["count"] == 1
    assert outputs["confirmNode"] == {"confirm": "yes"}
