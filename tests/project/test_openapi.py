"""The OpenAPI document: served at /api/schema/, covering every external route, generated from
the code's own types, and readable at /api/docs/ in a browser with no network."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from django.urls import URLPattern, URLResolver

from chat.urls import urlpatterns as history_urlpatterns
from config.openapi import NOT_IN_SCHEMA, schema
from config.routing import http_urlpatterns

pytestmark = pytest.mark.django_db(transaction=True)
CHROMIUM = Path("/usr/bin/chromium")


def openapi_path(pattern: URLPattern | URLResolver, prefix: str = "/") -> str:
    return prefix + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", str(pattern.pattern))


def test_every_external_route_is_in_the_schema():
    documented = set(schema()["paths"])
    routes = {openapi_path(p) for p in http_urlpatterns}
    routes |= {openapi_path(p, "/api/v1/chat/") for p in history_urlpatterns}
    assert routes - documented == set(NOT_IN_SCHEMA)
    assert documented - routes == set()


def test_the_schema_is_served_as_openapi_3_1_with_each_familys_errors(http):
    response = http.get("/api/schema/")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"] == "3.1.0"
    completions = document["paths"]["/v1/chat/completions"]["post"]
    assert completions["responses"]["400"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/OpenAIError"
    }
    assert "text/event-stream" in completions["responses"]["200"]["content"]
    chat = document["paths"]["/api/v1/aiBot/externalChat"]["post"]
    assert chat["responses"]["429"]["headers"]["Retry-After"]
    assert chat["responses"]["400"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/AiflowyError"
    }
    # Generated from the request models: a field's limits come from the model.
    request = document["components"]["schemas"]["ChatCompletionRequest"]
    assert request["properties"]["customUid"]["maxLength"] == 250
    assert "BotChatSocketFrame" in document["components"]["schemas"]


def test_the_merged_families_are_documented_in_their_own_shapes(http):
    document = http.get("/api/schema/").json()
    paths = document["paths"]
    schemas = document["components"]["schemas"]
    # Knowledge bases: FastGPT's envelope, on the current and the older path.
    for path in ("/api/core/dataset/data/pushData", "/api/openapi/kb/pushData"):
        push = paths[path]["post"]
        assert push["responses"]["400"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/DatasetError"
        }
    assert schemas["PushDataRequest"]["properties"]["kbId"]
    assert not paths["/api/support/wallet/bill/createTrainingBill"]["post"]["requestBody"][
        "required"
    ]
    # Share pages: no API key, the page's own error body and events.
    answer = paths["/api/chat-page/share/answer"]["post"]
    assert "security" not in answer
    assert "text/event-stream" in answer["responses"]["200"]["content"]
    assert answer["responses"]["403"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ShareError"
    }
    assert schemas["ShareOpenRequest"]["properties"]["shareId"]["maxLength"] == 64
    assert not any(path.startswith("/api/chat-page/playground/") for path in paths)
    # Workflows: resume, and a run that waits for a person.
    for family in ("workflow", "aiWorkflow"):
        resume = paths[f"/api/v1/{family}/external/resume"]["post"]
        assert resume["requestBody"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ResumeRequest"
        }
    assert set(schemas["RunSuspendedBody"]["required"]) >= {"waitingFor", "expiresAt"}
    assert "/api/chat/completions" in paths


def test_the_docs_page_and_its_script_are_served_by_the_app(http):
    page = http.get("/api/docs/")
    assert page.status_code == 200
    assert 'spec-url="/api/schema/"' in page.text
    script = http.get("/api/docs/redoc.standalone.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert len(script.content) > 100_000


@pytest.mark.browser
@pytest.mark.skipif(
    not CHROMIUM.exists() and not os.environ.get("CI"), reason="Debian's chromium is missing"
)
def test_the_docs_render_in_chromium_with_no_network_beyond_the_server(live_server_url, http):
    from playwright.sync_api import sync_playwright

    outside: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page()

        def only_the_server(route):
            if route.request.url.startswith(live_server_url):
                route.continue_()
            else:
                outside.append(route.request.url)
                route.abort()

        page.route("**/*", only_the_server)
        page.goto(f"{live_server_url}/api/docs/")
        heading = page.locator("h2", has_text="Chat completions (OpenAI-compatible")
        heading.first.wait_for(timeout=30_000)
        assert page.locator("h1", has_text="aiflowy API").first.is_visible()
        browser.close()
    assert outside == []


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/api/chat/completions"])
@pytest.mark.parametrize("detail", [False, True])
def test_chat_completion_streams_are_as_documented(http, bot, api_key, path, detail):
    """OpenAI's chunks ending in `[DONE]`, and FastGPT's named `detail` events, checked with
    schemathesis against the served document (the fuzz test rarely asks for a stream)."""
    import schemathesis

    operation = schemathesis.openapi.from_dict(schema())[path]["POST"]
    for stream in (False, True):
        response = http.post(
            path,
            headers={"Authorization": f"Bearer {api_key}"},
            json={
                "model": bot.name,
                "messages": [{"role": "user", "content": "hello"}],
                "stream": stream,
                "detail": detail,
                "variables": {"city": "厦门"},
                "stream_options": {"include_usage": True} if stream else None,
            },
        )
        assert response.status_code == 200, response.text
        assert ("event: flowResponses" in response.text) == (stream and detail)
        operation.validate_response(response)
