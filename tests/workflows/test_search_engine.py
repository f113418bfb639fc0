"""searchEngineNode against a loopback fake search server, through the real server and API,
with engines configured the way an operator does (the admin)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connection
from django.urls import reverse

from tests.workflows.conftest import finished_run
from workflows.models import SearchEngine

RUN = "/api/v1/workflow/external/run"
API_KEY = "sk-search-secret-1234"


def stored_key(engine: SearchEngine) -> str:
    """The API key as the database holds it."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT api_key_secret FROM workflows_searchengine WHERE id = %s", [engine.pk]
        )
        return cursor.fetchone()[0]


class FakeSearch:
    """``GET /search?q=…&format=json`` answers like SearXNG; ``POST /v1/web-search`` like a
    generic JSON search API (Bocha's shape) and wants ``Authorization: Bearer <API_KEY>``."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        service = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _answer(self, status: int, data: object) -> None:
                body = json.dumps(data, ensure_ascii=False).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                service.requests.append({"path": url.path, "query": query})
                if url.path != "/search" or query.get("format") != "json":
                    self._answer(404, {"error": "not found"})
                    return
                results = [
                    {
                        "title": f"{query['q']} #{n}",
                        "content": f"About {query['q']}",
                        "url": f"https://example.org/{n}",
                        "score": 1.0 / n,
                        "engine": "fake",
                    }
                    for n in range(1, 21)
                ]
                self._answer(200, {"query": query["q"], "results": results})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                auth = self.headers.get("Authorization")
                service.requests.append({"path": self.path, "body": body, "auth": auth})
                if auth != f"Bearer {API_KEY}":
                    self._answer(401, {"message": "bad key"})
                    return
                pages = [
                    {"name": f"{body['query']} page {n}", "snippet": "…", "url": f"https://b/{n}"}
                    for n in range(1, body.get("count", 10) + 1)
                ]
                self._answer(200, {"code": 200, "data": {"webPages": {"value": pages}}})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)


@pytest.fixture(scope="module")
def fake_search() -> Iterator[FakeSearch]:
    service = FakeSearch()
    service.thread.start()
    yield service
    service.server.shutdown()
    service.server.server_close()


def search_definition(engine: str, *, keyword="{{topic}} 新闻", limit="{{count}}") -> dict:
    return {
        "nodes": [
            {
                "id": "start",
                "type": "startNode",
                "data": {
                    "parameters": [
                        {"name": "topic", "dataType": "String", "required": True},
                        {"name": "count", "dataType": "Number"},
                    ]
                },
            },
            {
                "id": "search1",
                "type": "searchEngineNode",
                "data": {
                    "title": "搜索",
                    "engine": engine,
                    "keyword": keyword,
                    "limit": limit,
                    "parameters": [
                        {"name": "topic", "refType": "ref", "ref": "start.topic"},
                        {"name": "count", "refType": "ref", "ref": "start.count"},
                    ],
                    "outputDefs": [{"name": "documents", "dataType": "Array"}],
                },
            },
            {
                "id": "end",
                "type": "endNode",
                "data": {
                    "outputDefs": [
                        {"name": "docs", "refType": "ref", "ref": "search1.documents"},
                        {"name": "first", "refType": "ref", "ref": "search1.documents[0].title"},
                    ]
                },
            },
        ],
        "edges": [
            {"id": "e1", "source": "start", "target": "search1"},
            {"id": "e2", "source": "search1", "target": "end"},
        ],
    }


def run(http, api_key, workflow, **variables):
    return http.post(
        RUN,
        headers={"Authorization": api_key},
        json={"id": str(workflow.id), "variables": variables},
    )


def test_a_searxng_engine_answers_documents(http, api_key, make_workflow, fake_search):
    SearchEngine.objects.create(
        name="searx", kind="searxng", url=fake_search.url, allow_private=True
    )
    workflow = make_workflow(search_definition("searx"))
    response = run(http, api_key, workflow, topic="厦门", count=3)
    assert response.status_code == 200, response.text
    result = response.json()["result"]
    assert result["first"] == "厦门 新闻 #1"
    assert [d["url"] for d in result["docs"]] == [f"https://example.org/{n}" for n in (1, 2, 3)]
    assert result["docs"][0] == {
        "title": "厦门 新闻 #1",
        "content": "About 厦门 新闻",
        "url": "https://example.org/1",
        "score": 1.0,
    }
    assert fake_search.requests[-1]["query"] == {"q": "厦门 新闻", "format": "json"}
    step = finished_run(run_id=response.json()["runId"]).steps.get(node_id="search1")
    assert step.meta == {"engine": "searx", "query": "厦门 新闻", "limit": 3, "results": 3}


def test_a_generic_json_engine_posts_with_its_encrypted_key(
    http, api_key, make_workflow, fake_search, admin_client
):
    response = admin_client.post(
        reverse("admin:workflows_searchengine_add"),
        {
            "name": "bocha",
            "title": "博查",
            "kind": "json",
            "url": f"{fake_search.url}/v1/web-search",
            "api_key": API_KEY,
            "api_key_header": "Authorization",
            "api_key_prefix": "Bearer ",
            "method": "POST",
            "query_field": "query",
            "limit_field": "count",
            "results_path": "data.webPages.value",
            "title_field": "name",
            "content_field": "snippet",
            "url_field": "url",
            "extra_params": "{}",
            "allow_private": "on",
            "enabled": "on",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    engine = SearchEngine.objects.get(name="bocha")
    stored = stored_key(engine)
    assert stored.startswith("fernet:") and API_KEY not in stored
    assert engine.api_key_secret == API_KEY
    page = admin_client.get(reverse("admin:workflows_searchengine_change", args=[engine.pk]))
    assert API_KEY not in page.content.decode()

    workflow = make_workflow(search_definition("bocha", limit="2"))
    response = run(http, api_key, workflow, topic="AI")
    assert response.status_code == 200, response.text
    assert response.json()["result"]["docs"] == [
        {"title": "AI 新闻 page 1", "content": "…", "url": "https://b/1", "score": None},
        {"title": "AI 新闻 page 2", "content": "…", "url": "https://b/2", "score": None},
    ]
    assert fake_search.requests[-1]["body"] == {"query": "AI 新闻", "count": 2}

    # Saving again without typing the key keeps it.
    data = {
        "name": "bocha",
        "title": "博查 2",
        "kind": "json",
        "url": engine.url,
        "api_key": "",
        "api_key_header": "Authorization",
        "api_key_prefix": "Bearer ",
        "method": "POST",
        "query_field": "query",
        "limit_field": "count",
        "results_path": "data.webPages.value",
        "title_field": "name",
        "content_field": "snippet",
        "url_field": "url",
        "extra_params": "{}",
        "allow_private": "on",
        "enabled": "on",
    }
    admin_client.post(reverse("admin:workflows_searchengine_change", args=[engine.pk]), data)
    engine.refresh_from_db()
    assert engine.title == "博查 2"
    assert engine.api_key_secret == API_KEY


def test_an_engine_on_a_private_address_is_refused_unless_the_operator_allows_it(
    http, api_key, make_workflow, fake_search
):
    SearchEngine.objects.create(name="internal", kind="searxng", url=fake_search.url)
    workflow = make_workflow(search_definition("internal"))
    response = run(http, api_key, workflow, topic="x")
    # A failed run is the AIFlowy error shape, naming the node.
    assert response.status_code == 500, response.text
    body = response.json()
    assert body["nodeId"] == "search1"
    assert body["message"].startswith('node "search1" (搜索) failed: refusing to connect to')
    assert "non-public address" in body["message"]
    assert all(r.get("query", {}).get("q") != "x 新闻" for r in fake_search.requests)


@pytest.mark.parametrize(
    ("engine_name", "setup", "fragment"),
    [
        ("nobody", None, 'engine \\"nobody\\" names no configured search engine'),
        ("off", {"enabled": False}, 'the search engine \\"off\\" is disabled'),
        ("badkey", {"kind": "json", "method": "POST"}, "answered HTTP 401"),
    ],
)
def test_engine_failures_name_the_node(
    http, api_key, make_workflow, fake_search, engine_name, setup, fragment
):
    if setup is not None:
        SearchEngine.objects.create(
            name=engine_name,
            url=f"{fake_search.url}/v1/web-search",
            allow_private=True,
            **{"kind": "searxng", **setup},
        )
    workflow = make_workflow(search_definition(engine_name))
    text = run(http, api_key, workflow, topic="x").text
    assert 'node \\"search1\\" (搜索) failed' in text, text
    assert fragment in text, text


def test_a_search_node_without_an_engine_is_refused_on_save(admin_client):
    definition = search_definition("")
    response = admin_client.post(
        reverse("admin:workflows_workflow_add"),
        {"title": "T", "description": "", "enabled": "on", "definition": json.dumps(definition)},
    )
    assert response.status_code == 200
    assert "the search engine node names no engine" in response.content.decode()
