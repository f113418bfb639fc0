"""The workflow admin: validated JSON, import/export, graph, test run; the run admin."""

from __future__ import annotations

import io
import json
from xml.etree import ElementTree

import pytest
from django.urls import reverse

from bots.models import Bot, LlmProvider
from demo.workflows import demo_workflow_definition
from tests.workflows.conftest import data_file
from tests.workflows.test_run import typed_definition
from workflows.definitions import workflow_create
from workflows.models import Workflow, WorkflowRun

pytestmark = pytest.mark.django_db


def form_data(definition, **fields) -> dict:
    text = definition if isinstance(definition, str) else json.dumps(definition)
    return {"title": "T", "description": "", "enabled": "on", "definition": text, **fields}


def bad_reference_definition() -> dict:
    definition = typed_definition()
    definition["nodes"][1]["data"]["outputDefs"].append(
        {"name": "ghost", "refType": "ref", "ref": "start.nothing_here"}
    )
    definition["nodes"][1]["data"]["outputDefs"].append(
        {"name": "bad", "refType": "ref", "ref": "fetcher.body"}
    )
    return definition


@pytest.mark.parametrize(
    ("mutate", "fragments"),
    [
        (
            lambda d: d["nodes"][1]["data"]["outputDefs"].append(
                {"name": "bad", "refType": "ref", "ref": "missing_node.body"}
            ),
            ['节点 "end"', "missing_node.body"],
        ),
        (
            lambda d: d["edges"].append({"id": "e9", "source": "start", "target": "nowhere"}),
            ['连线 "e9"', "nowhere"],
        ),
        (
            lambda d: d["nodes"].append({"id": "odd", "type": "teleportNode", "data": {}}),
            ['节点 "odd"', "teleportNode"],
        ),
        (
            lambda d: d["nodes"].append({"id": "start2", "type": "startNode", "data": {}}),
            ["start2", "必须恰好一个"],
        ),
    ],
)
def test_saving_an_invalid_definition_shows_an_error_naming_the_node_or_edge(
    admin_client, mutate, fragments
):
    """In the admin's language (zh-hans): the checker's English is translated."""
    definition = typed_definition()
    mutate(definition)
    response = admin_client.post(reverse("admin:workflows_workflow_add"), form_data(definition))
    assert response.status_code == 200
    errors = str(response.context["adminform"].form.errors["definition"])
    for fragment in fragments:
        assert fragment in errors.replace("&quot;", '"')
    assert not Workflow.objects.exists()


def test_invalid_json_text_is_refused(admin_client):
    response = admin_client.post(reverse("admin:workflows_workflow_add"), form_data('{"nodes": ['))
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["definition"]
    assert not Workflow.objects.exists()


def test_a_valid_definition_saves(admin_client):
    response = admin_client.post(
        reverse("admin:workflows_workflow_add"), form_data(typed_definition(), title="Typed")
    )
    assert response.status_code == 302
    workflow = Workflow.objects.get()
    assert workflow.title == "Typed"
    assert workflow.definition == typed_definition()


def test_the_add_form_starts_with_a_runnable_skeleton(admin_client):
    response = admin_client.get(reverse("admin:workflows_workflow_add"))
    assert response.status_code == 200
    assert "startNode" in response.content.decode()


def upload(name: str, content: bytes) -> io.BytesIO:
    file = io.BytesIO(content)
    file.name = name
    return file


def test_import_then_export_round_trips(admin_client):
    original = data_file("aiflowy_llm_http_condition.json")
    response = admin_client.post(
        reverse("admin:workflows_workflow_import"),
        {"file": upload("ip.json", json.dumps(original, ensure_ascii=False).encode())},
    )
    assert response.status_code == 302
    workflow = Workflow.objects.get()
    assert workflow.title == "IP 解读"
    assert workflow.description == "LLM 规范化输入，HTTP 查询，条件分支"
    assert "title" not in workflow.definition
    assert workflow.definition["nodes"] == original["nodes"]

    exported = admin_client.get(reverse("admin:workflows_workflow_export", args=[workflow.pk]))
    assert exported.status_code == 200
    assert "attachment" in exported["Content-Disposition"]
    document = json.loads(exported.content)
    assert document == original

    admin_client.post(
        reverse("admin:workflows_workflow_import"),
        {"file": upload("again.json", exported.content), "title": "Copy"},
    )
    copy = Workflow.objects.get(title="Copy")
    assert copy.definition == workflow.definition
    assert copy.description == workflow.description


def test_import_accepts_a_bare_definition_and_an_aiflowy_record(admin_client):
    bare = data_file("aiflowy_ip_lookup.json")
    admin_client.post(
        reverse("admin:workflows_workflow_import"),
        {"file": upload("获取IP.json", json.dumps(bare).encode())},
    )
    assert Workflow.objects.get().title == "获取IP"
    record = {"title": "From AIFlowy", "description": "d", "content": json.dumps(bare)}
    admin_client.post(
        reverse("admin:workflows_workflow_import"),
        {"file": upload("x.json", json.dumps(record).encode())},
    )
    imported = Workflow.objects.get(title="From AIFlowy")
    assert imported.definition == bare


def test_importing_an_invalid_definition_names_the_node(admin_client):
    definition = typed_definition()
    definition["nodes"][1]["data"]["outputDefs"].append(
        {"name": "bad", "refType": "ref", "ref": "start.nothing"}
    )
    definition["edges"] = []
    response = admin_client.post(
        reverse("admin:workflows_workflow_import"),
        {"file": upload("bad.json", json.dumps(definition).encode())},
    )
    assert response.status_code == 200
    # The checker's finding, in the admin's language (zh-hans).
    assert "工作流没有连线" in response.content.decode()
    assert not Workflow.objects.exists()


def test_the_graph_view_draws_every_node_and_edge_as_svg(admin_client):
    workflow = workflow_create(
        title="Graph", definition=data_file("aiflowy_llm_http_condition.json")
    )
    response = admin_client.get(reverse("admin:workflows_workflow_graph", args=[workflow.pk]))
    assert response.status_code == 200
    page = response.content.decode()
    assert "<svg" in page
    for node_id, title in [
        ("start1", "开始"),
        ("llm1", "规范化"),
        ("http1", "查询"),
        ("brief1", "简要"),
        ("end1", "结束"),
    ]:
        assert f'data-node-id="{node_id}"' in page
        assert title in page
    for edge_id in ("e1", "e2", "e3", "e4", "e5"):
        assert f'data-edge-id="{edge_id}"' in page
    assert "!detail" in page
    start = page.index('<svg xmlns="http://www.w3.org/2000/svg" class="workflow-graph"')
    svg = page[start : page.index("</svg>", start) + len("</svg>")]
    tree = ElementTree.fromstring(svg)  # well-formed XML
    assert len(tree.findall("{http://www.w3.org/2000/svg}g")) == 10  # 5 nodes + 5 edges
    assert "<script" not in svg


def test_the_graph_escapes_text_from_the_definition(admin_client):
    definition = typed_definition()
    definition["nodes"][0]["data"]["title"] = "<script>alert(1)</script>"
    workflow = workflow_create(title="x", definition=definition)
    response = admin_client.get(reverse("admin:workflows_workflow_graph", args=[workflow.pk]))
    assert "<script>alert(1)" not in response.content.decode()


def test_the_change_page_shows_the_graph_and_tools(admin_client):
    workflow = workflow_create(title="Typed", definition=typed_definition())
    response = admin_client.get(reverse("admin:workflows_workflow_change", args=[workflow.pk]))
    page = response.content.decode()
    assert 'data-node-id="start"' in page
    assert reverse("admin:workflows_workflow_test_run", args=[workflow.pk]) in page
    assert reverse("admin:workflows_workflow_export", args=[workflow.pk]) in page


def test_the_test_run_form_asks_for_the_start_parameters(admin_client):
    workflow = workflow_create(title="Typed", definition=typed_definition())
    response = admin_client.get(reverse("admin:workflows_workflow_test_run", args=[workflow.pk]))
    assert response.status_code == 200
    form = response.context["form"]
    assert list(form.fields) == ["text", "count", "flag", "options", "items", "photo", "note"]
    assert form.fields["text"].required
    assert not form.fields["note"].required


def test_the_test_run_shows_result_and_steps_and_records_the_run(admin_client):
    echo = LlmProvider.objects.create(name="echo", kind=LlmProvider.Kind.ECHO)
    bot = Bot.objects.create(name="demo", provider=echo)
    workflow = workflow_create(title="Demo", definition=demo_workflow_definition(bot.id))
    response = admin_client.post(
        reverse("admin:workflows_workflow_test_run", args=[workflow.pk]),
        {"var-topic": "rain", "var-audience": "children"},
    )
    assert response.status_code == 200
    run = response.context["run"]
    assert run.status == WorkflowRun.Status.SUCCEEDED
    assert run.source == WorkflowRun.Source.ADMIN
    assert run.api_key is None
    assert run.result == {
        "sentence": "Echo: Write one sentence about rain.",
        "text": "About rain: Echo: Write one sentence about rain.",
    }
    page = response.content.decode()
    assert "Echo: Write one sentence about rain." in page
    for node_id in ("start", "llm", "template", "end"):
        assert f'class="run-step" data-node-id="{node_id}"' in page
    llm_step = run.steps.get(node_id="llm")
    assert llm_step.meta["systemPrompt"] == "You write one clear sentence for children."


def test_the_test_run_names_an_invalid_parameter(admin_client):
    workflow = workflow_create(title="Typed", definition=typed_definition())
    response = admin_client.post(
        reverse("admin:workflows_workflow_test_run", args=[workflow.pk]),
        {
            "var-text": "t",
            "var-count": "lots",
            "var-flag": "true",
            "var-options": "{}",
            "var-items": "[]",
            "var-photo": "https://example.com/x.png",
        },
    )
    assert response.status_code == 200
    assert response.context["run"] is None
    assert "count" in response.context["form"].errors


def test_the_test_run_shows_a_failing_node(admin_client):
    definition = typed_definition()
    definition["nodes"].insert(
        1,
        {
            "id": "boom",
            "type": "codeNode",
            "data": {"title": "Boom", "engine": "js", "code": "throw new Error('kaput')"},
        },
    )
    definition["edges"] = [
        {"id": "e1", "source": "start", "target": "boom"},
        {"id": "e2", "source": "boom", "target": "end"},
    ]
    workflow = workflow_create(title="Boom", definition=definition)
    response = admin_client.post(
        reverse("admin:workflows_workflow_test_run", args=[workflow.pk]),
        {
            "var-text": "t",
            "var-count": "1",
            "var-flag": "false",
            "var-options": "{}",
            "var-items": "[]",
            "var-photo": "https://example.com/x.png",
        },
    )
    run = response.context["run"]
    assert run.status == WorkflowRun.Status.FAILED
    assert run.failed_node_id == "boom"
    assert "kaput" in response.content.decode()


def test_the_run_admin_lists_runs_and_shows_each_step(admin_client):
    workflow = workflow_create(title="Typed", definition=typed_definition())
    admin_client.post(
        reverse("admin:workflows_workflow_test_run", args=[workflow.pk]),
        {
            "var-text": "hello there",
            "var-count": "7",
            "var-flag": "true",
            "var-options": '{"k": "v"}',
            "var-items": "[1]",
            "var-photo": "https://example.com/x.png",
        },
    )
    run = WorkflowRun.objects.get()
    listing = admin_client.get(reverse("admin:workflows_workflowrun_changelist"))
    assert listing.status_code == 200
    assert str(run.run_id) in listing.content.decode()
    detail = admin_client.get(reverse("admin:workflows_workflowrun_change", args=[run.pk]))
    assert detail.status_code == 200
    page = detail.content.decode()
    assert "hello there" in page
    assert "succeeded" in page
    assert page.count("startNode") >= 1 and page.count("endNode") >= 1
    assert admin_client.get(reverse("admin:workflows_workflowrun_add")).status_code == 403


def test_the_definition_is_shown_indented_with_readable_chinese(admin_client, make_workflow):
    workflow = make_workflow(
        {
            "nodes": [
                {"id": "s", "type": "startNode", "data": {"title": "开始", "parameters": []}},
                {"id": "e", "type": "endNode", "data": {"title": "结束", "outputDefs": []}},
            ],
            "edges": [{"id": "x", "source": "s", "target": "e"}],
        }
    )
    page = admin_client.get(f"/admin/workflows/workflow/{workflow.pk}/change/").content.decode()
    assert "&quot;title&quot;: &quot;开始&quot;" in page
    assert "\n  &quot;nodes&quot;: [" in page
