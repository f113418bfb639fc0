"""Every request example of the reference documents works as written against the demo data
(`setupdemo`), with only the host and the key changed: the demo key is bound to the demo bot,
so AIFlowy's `botId` and `"model": "gpt-4"` and FastGPT's requests without `model` all reach
it. The examples are parsed out of `data/reference_examples.md` (verbatim copies, with their
sources); the two workflow placeholders are replaced as that file says."""

from __future__ import annotations

import io
import json
import re
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

import openai
import pytest
from django.core.management import call_command

from chat.models import Conversation, Message
from tests.conftest import sse_events, sse_json, wait_until
from workflows.models import Workflow, WorkflowRun

EXAMPLES_FILE = Path(__file__).parent / "data" / "reference_examples.md"
DOC_HOSTS = ("http://127.0.0.1:8080", "https://api.fastgpt.in")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)


@dataclass(frozen=True)
class Example:
    name: str
    url: str
    headers: dict[str, str]
    body: bytes
    content_type: str


def _with_key(value: str, key: str) -> str:
    """The documents' key placeholders, replaced by the real key."""
    if value == "apiKey":
        return key
    return re.sub(r"^Bearer .*$", f"Bearer {key}", value)


def parse_examples(key: str, host: str, workflow_id: int) -> list[Example]:
    examples = []
    for section in EXAMPLES_FILE.read_text("utf-8").split("\n## ")[1:]:
        name = section.splitlines()[0].strip()
        fields = dict(re.findall(r"^(request|authorization): (.*)$", section, re.M))
        language, block = FENCE.search(section).groups()
        if language == "sh":
            words = shlex.split(block.replace("\\\n", " "))
            url = next(w for w in words if w.startswith("http"))
            headers = dict(
                words[i + 1].split(": ", 1) for i, w in enumerate(words) if w == "--header"
            )
            headers["Authorization"] = _with_key(headers["Authorization"], key)
            body = words[words.index("--data-raw") + 1].encode()
            content_type = headers.pop("Content-Type")
        else:
            url = fields["request"].split(" ", 1)[1]
            headers = {"Authorization": _with_key(fields["authorization"], key)}
            body = block.encode()
            content_type = "application/json"
            if language == "form":
                body = block.strip().replace("workflowId", str(workflow_id)).encode()
                content_type = "application/x-www-form-urlencoded"
            elif "workflowId" in block:
                # The placeholders of AIFlowy's workflow page (see the examples file).
                document = json.loads(re.sub(r"//[^\n]*", "", block))
                document["id"] = workflow_id
                document["variables"] = {**document["variables"], "topic": "the sea"}
                body = json.dumps(document, ensure_ascii=False).encode()
        for doc_host in DOC_HOSTS:
            url = url.replace(doc_host, host)
        examples.append(Example(name, url, headers, body, content_type))
    return examples


@pytest.fixture
def demo(http, live_server_url, monkeypatch) -> tuple[str, list[Example]]:
    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "OPENAI_MODEL"):
        monkeypatch.delenv(name, raising=False)
    out = io.StringIO()
    call_command("setupdemo", stdout=out)
    key = re.search(r"shown once, copy it now\): (af-\S+)", out.getvalue()).group(1)
    yield key, parse_examples(key, live_server_url, Workflow.objects.get().pk)
    # Let the server finish writing history before the tables are emptied: every run finished
    # and no answer written for a moment (the echo provider leaves no upstream calls to count).
    wait_until(lambda: not WorkflowRun.objects.filter(finished_at=None).exists())
    counts: list[int] = []

    def settled() -> bool:
        counts.append(Message.objects.filter(role="assistant").count())
        time.sleep(0.1)
        return len(counts) >= 3 and counts[-1] == counts[-3]

    wait_until(settled)


def _send(http, example: Example, **headers):
    return http.post(
        example.url,
        content=example.body,
        headers={**example.headers, "Content-Type": example.content_type, **headers},
    )


def test_every_request_example_of_the_documents_succeeds_with_the_demo_key(http, demo):
    _key, examples = demo
    assert len(examples) == 9
    by_name = {example.name: example for example in examples}
    for example in examples:
        response = _send(http, example)
        assert response.status_code == 200, (example.name, response.text)

    chat = _send(http, by_name["externalChat, JSON"]).json()
    assert chat["status"] == "END"
    assert chat["choices"]["message"]["content"] == "Echo: 帮我翻译 what's your name ?"

    frames = sse_json(_send(http, by_name["externalChat, stream"]).text)
    assert [frames[0]["status"], frames[-1]["status"]] == ["START", "END"]
    assert "".join(f["choices"]["delta"]["content"] for f in frames) == "Echo: 你叫什么名字?"

    params = _send(http, by_name["workflow getRunningParams"]).json()
    assert params["errorCode"] == 0
    assert "topic" in {parameter["name"] for parameter in params["parameters"]}
    run = _send(http, by_name["workflow run"]).json()
    assert run["errorCode"] == 0 and run["result"]

    for name in ("OpenAI-compatible, example 1", "OpenAI-compatible, example 2"):
        answer = _send(http, by_name[name]).json()
        assert answer["object"] == "chat.completion"
        assert answer["model"] == "demo"
        assert answer["choices"][0]["message"]["content"] == "Echo: Hello, how are you?"

    # The AIFlowy page shows its own reply shape for the stream; OpenAI's is the default, and
    # the documented switch gives the page's shape.
    stream = _send(http, by_name["OpenAI-compatible, stream"]).text
    assert stream.endswith("data: [DONE]\n\n")
    assert all(name is None for name, _ in sse_events(stream))
    shaped = sse_json(
        _send(http, by_name["OpenAI-compatible, stream"], **{"X-Aiflowy-Reply": "aiflowy"}).text
    )
    assert [shaped[0]["status"], shaped[-1]["status"]] == ["START", "END"]

    fastgpt = _send(http, by_name["FastGPT, custom user id"]).json()
    assert fastgpt["choices"][0]["message"]["content"] == "Echo: 导演是谁"
    conversation = wait_until(lambda: Conversation.objects.filter(external_chat_id="111").first())
    assert conversation.custom_uid == "xxxxxx"


def test_fastgpts_base_url_works_with_the_openai_sdk(demo, live_server_url):
    """FastGPT tells SDK users its base URL is `…/api` (no `v1`)."""
    key, _examples = demo
    with openai.OpenAI(api_key=key, base_url=f"{live_server_url}/api", max_retries=0) as client:
        answer = client.chat.completions.create(
            model="", messages=[{"role": "user", "content": "导演是谁"}]
        )
    assert answer.choices[0].message.content == "Echo: 导演是谁"
