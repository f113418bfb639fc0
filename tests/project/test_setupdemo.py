"""`manage.py setupdemo` (run by `make run`): idempotent, prints the demo key once, and the
printed key works against the demo bot and the demo workflow."""

import re
from io import StringIO

from django.core.management import call_command

from apikeys.models import ApiKey
from bots.models import Bot, LlmProvider
from chat.models import Message
from tests.conftest import wait_until
from workflows.models import Workflow, WorkflowRun


def _run(**env) -> str:
    out = StringIO()
    call_command("setupdemo", stdout=out)
    return out.getvalue()


def test_it_creates_the_demo_once_and_shows_the_key_only_the_first_time(http, monkeypatch):
    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "OPENAI_MODEL"):
        monkeypatch.delenv(name, raising=False)
    first = _run()
    key = re.search(r"shown once, copy it now\): (af-\S+)", first).group(1)
    assert f"Authorization: Bearer {key}" in first
    second = _run()
    assert key not in second
    assert "exists" in second
    assert ApiKey.objects.filter(name="demo").count() == 1
    assert Bot.objects.filter(name="demo").count() == 1
    assert Workflow.objects.count() == 1

    bot = Bot.objects.get(name="demo")
    assert bot.provider.kind == LlmProvider.Kind.ECHO
    chat = http.post(
        "/api/v1/aiBot/externalChat",
        headers={"Authorization": f"Bearer {key}"},
        json={"botId": bot.id, "messages": [{"role": "user", "content": "你好"}]},
    )
    assert chat.json()["choices"]["message"]["content"] == "Echo: 你好"

    workflow = Workflow.objects.get()
    run = http.post(
        "/api/v1/workflow/external/run",
        headers={"Authorization": key},
        json={"id": workflow.id, "variables": {"topic": "the sea"}},
    )
    assert run.status_code == 200
    assert run.json()["errorCode"] == 0
    assert run.json()["result"]
    # Let the server finish writing this test's history before the tables are emptied.
    wait_until(lambda: Message.objects.filter(role="assistant").exists())
    wait_until(lambda: WorkflowRun.objects.exclude(finished_at=None).exists())


def test_it_points_the_demo_provider_at_an_openai_endpoint_when_configured(db, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-demo")
    monkeypatch.setenv("OPENAI_MODEL", "gpt-demo")
    _run()
    provider = LlmProvider.objects.get(name="demo")
    assert (provider.kind, provider.base_url, provider.default_model) == (
        LlmProvider.Kind.OPENAI,
        "http://127.0.0.1:9/v1",
        "gpt-demo",
    )
