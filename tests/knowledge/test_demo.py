"""`make run`'s demo: a bilingual knowledge base linked to the demo bot (full-text without a
real provider), and the printed curl examples for the three endpoints work with the key."""

from __future__ import annotations

import re
import shlex
from io import StringIO

from django.core.management import call_command

from chat.models import Message
from knowledge.models import BotKnowledgeBase, DataItem, KnowledgeBase
from tests.conftest import wait_until
from tests.knowledge.conftest import ok_data


def test_the_demo_knowledge_base_answers_the_printed_examples(http, monkeypatch, live_server_url):
    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "OPENAI_MODEL"):
        monkeypatch.delenv(name, raising=False)
    out = StringIO()
    call_command("setupdemo", "--host", live_server_url, stdout=out)
    call_command("setupdemo", "--host", live_server_url, stdout=StringIO())  # idempotent
    kb = KnowledgeBase.objects.get(name="demo-handbook")
    assert kb.embedding_model == "" and DataItem.objects.filter(knowledge_base=kb).count() == 8
    assert BotKnowledgeBase.objects.get(knowledge_base=kb).bot.name == "demo"

    commands = [
        line.strip()
        for line in out.getvalue().splitlines()
        if "/api/core/" in line or "createTrainingBill" in line
    ]
    assert len(commands) == 3
    for command in commands:
        words = shlex.split(command)
        url = words[words.index("-s") + 1]
        headers = dict(words[i + 1].split(": ", 1) for i, word in enumerate(words) if word == "-H")
        body = words[words.index("-d") + 1]
        response = http.post(url.removeprefix(live_server_url), headers=headers, content=body)
        data = ok_data(response)
        if "searchTest" in url:
            assert data[0]["q"] == "如何重置电脑登录密码？"
        elif "pushData" in url:
            assert data == {"insertLen": 1}
        else:
            assert re.fullmatch(r"[0-9a-f-]{36}", data)

    key = re.search(r"Bearer (af-\S+?)'", out.getvalue()).group(1)
    http.post(
        "/api/v1/aiBot/externalChat",
        headers={"Authorization": key},
        json={
            "botId": kb.bot_links.get().bot_id,
            "messages": [{"role": "user", "content": "加班工资怎么算"}],
        },
    )
    wait_until(lambda: Message.objects.filter(role="assistant").exclude(quoted_items=[]).exists())
