"""HTTP nodes against a loopback server the tests start themselves, SSRF refusals, and the
AIFlowy export end to end."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import pytest_asyncio

from aiflowy.outbound import OutboundError, fetch, is_forbidden_address
from workflows.engine import EngineLimits, LlmAnswer, parse_definition, run_workflow

DATA = Path(__file__).parent / "data"
LOOPBACK_OK = EngineLimits(http_allow_private=True)


class IpService:
    """A tiny HTTP/1.1 server: an IP lookup like ip-api.com, an echo, and error routes."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.server = None
        self.base = ""

    async def start(self) -> IpService:
        import asyncio

        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        return self

    async def stop(self) -> None:
        self.server.close()
        await self.server.wait_closed()

    async def handle(self, reader, writer) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    name, value = line.split(":", 1)
                    headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            body = await reader.readexactly(length) if length else b""
            url = urlsplit(target)
            request = {
                "method": method,
                "path": unquote(url.path),
                "query": {k: v[0] for k, v in parse_qs(url.query).items()},
                "headers": headers,
                "body": body.decode("utf-8"),
            }
            self.requests.append(request)
            status, content_type, payload = self.route(request)
            reason = {200: "OK", 302: "Found", 404: "Not Found"}.get(status, "Error")
            location = "/loop" if request["path"] == "/loop" else "/json/1.1.1.1"
            extra = f"Location: {location}\r\n" if status == 302 else ""
            writer.write(
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(payload)}\r\nX-Service: ip\r\n{extra}"
                "Connection: close\r\n\r\n".encode()
                + payload
            )
            await writer.drain()
        finally:
            writer.close()

    def route(self, request: dict) -> tuple[int, str, bytes]:
        path = request["path"]
        if path.startswith("/json/"):
            ip = path.removeprefix("/json/")
            data = {
                "status": "success",
                "country": "中国",
                "countryCode": "CN",
                "regionName": "福建",
                "city": "福州",
                "query": ip,
                "lang": request["query"].get("lang"),
            }
            return 200, "application/json; charset=utf-8", json.dumps(data).encode()
        if path == "/echo":
            return 200, "application/json", json.dumps(request).encode()
        if path == "/text":
            return 200, "text/plain; charset=utf-8", "纯文本".encode()
        if path == "/big":
            return 200, "text/plain", b"x" * 10_000
        if path in ("/redirect", "/loop"):
            return 302, "text/plain", b""
        if path.startswith("/status/"):
            code = int(path.removeprefix("/status/"))
            return code, "text/plain", f"status {code}".encode()
        return 404, "text/plain", b"no such route"


@pytest_asyncio.fixture
async def service():
    server = await IpService().start()
    yield server
    await server.stop()


class FakeLlm:
    def __init__(self) -> None:
        self.calls: list[list[dict]] = []

    async def chat(self, llm_id, messages, *, temperature, top_p, max_tokens, on_token):
        self.calls.append(messages)
        return LlmAnswer("福州是福建省会。", 10, 8, "fake")


def http_flow(url: str, *, end_refs: dict | None = None, **http_data):
    http_data.setdefault("method", "get")
    http_data.setdefault(
        "parameters", [{"name": "ip", "refType": "ref", "ref": "start1.ipAddress"}]
    )
    refs = end_refs or {"info": "http1.body", "status": "http1.statusCode"}
    return parse_definition(
        {
            "nodes": [
                {
                    "id": "start1",
                    "type": "startNode",
                    "data": {
                        "title": "开始",
                        "parameters": [
                            {
                                "id": "p1",
                                "name": "ipAddress",
                                "dataType": "String",
                                "refType": "input",
                                "required": True,
                                "description": "IP地址",
                            }
                        ],
                    },
                },
                {
                    "id": "http1",
                    "type": "httpNode",
                    "data": {"title": "查询", "url": url, **http_data},
                },
                {
                    "id": "end1",
                    "type": "endNode",
                    "data": {
                        "title": "结束",
                        "outputDefs": [
                            {"name": k, "refType": "ref", "ref": v} for k, v in refs.items()
                        ],
                    },
                },
            ],
            "edges": [
                {"id": "e1", "source": "start1", "target": "http1"},
                {"id": "e2", "source": "http1", "target": "end1"},
            ],
        }
    )


async def run(defn, variables=None, limits=LOOPBACK_OK):
    return await run_workflow(
        defn, variables or {"ipAddress": "218.86.179.185"}, llm=FakeLlm(), limits=limits
    )


def http_step(result):
    return next(s for s in result.steps if s.node_id == "http1")


# ---------------------------------------------------------------------------------------------
# The reference example and the AIFlowy export


@pytest.mark.asyncio
async def test_the_ip_address_reference_example_runs(service):
    defn = http_flow(service.base + "/json/{{ip}}")
    result = await run(defn)
    assert result.status == "succeeded", result.error
    assert result.result["status"] == 200
    assert result.result["info"]["city"] == "福州"
    assert result.result["info"]["query"] == "218.86.179.185"
    step = http_step(result)
    assert step.outputs["headers"]["x-service"] == "ip"
    assert step.meta["url"] == service.base + "/json/218.86.179.185"


@pytest.mark.asyncio
async def test_the_aiflowy_export_parses_and_runs(service):
    raw = (DATA / "aiflowy_export.json").read_text("utf-8")
    defn = parse_definition(raw.replace("http://ip-api.example", service.base))
    port = FakeLlm()
    result = await run_workflow(defn, {"ipAddress": "218.86.179.185"}, llm=port, limits=LOOPBACK_OK)
    assert result.status == "succeeded", result.error
    assert result.result == {
        "info": {
            "status": "success",
            "country": "中国",
            "countryCode": "CN",
            "regionName": "福建",
            "city": "福州",
            "query": "218.86.179.185",
            "lang": "zh-CN",
        },
        "location": "福州, 福建, 中国",
        "city": "福州",
        "summary": "福州是福建省会。",
        "source": "ip-api (218.86.179.185)",
    }
    assert service.requests[0]["headers"]["accept"] == "application/json"
    # The older single-brace prompt reaches the model with the node's own parameter filled.
    assert port.calls[0] == [
        {"role": "system", "content": "你是一个地理助手。"},
        {"role": "user", "content": "请用一句话介绍这个位置：福州, 福建, 中国"},
    ]
    statuses = {s.title: s.status for s in result.steps}
    assert statuses["失败提示"] == "skipped"
    assert statuses["结束节点"] == "succeeded"


# ---------------------------------------------------------------------------------------------
# SSRF


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "url",
    [
        "{base}/json/1.1.1.1",
        "http://localhost:{port}/json/1.1.1.1",
        "http://10.1.2.3/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:{port}/",
        "http://[::ffff:127.0.0.1]:{port}/",
        "http://2130706433:{port}/",
    ],
)
async def test_private_addresses_are_refused_by_default(service, url):
    defn = http_flow(url.format(base=service.base, port=service.port))
    result = await run(defn, limits=EngineLimits())
    assert result.status == "failed"
    assert result.failed_node_id == "http1"
    assert result.error.startswith('node "http1" (查询) failed: refusing to connect')
    assert service.requests == []


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "100.64.0.1",
        "169.254.169.254",
        "0.0.0.0",
        "224.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "ff02::1",
        "::ffff:10.0.0.1",
        "64:ff9b::7f00:1",
        "2002:7f00:1::",
    ],
)
def test_non_public_addresses_are_forbidden(address):
    assert is_forbidden_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2001:4860:4860::8888"])
def test_public_addresses_are_allowed(address):
    assert not is_forbidden_address(ipaddress.ip_address(address))


@pytest.mark.asyncio
async def test_only_http_and_https_are_fetched():
    with pytest.raises(OutboundError, match="only http and https"):
        await fetch("GET", "file:///etc/passwd")


# ---------------------------------------------------------------------------------------------
# Request bodies, headers and responses


@pytest.mark.asyncio
@pytest.mark.parametrize("key", ["rawBody", "bodyRaw"])
async def test_raw_bodies_are_sent_under_either_key(service, key):
    defn = http_flow(
        service.base + "/echo", method="post", bodyType="raw", **{key: "ip={{ip}}&raw=1"}
    )
    result = await run(defn)
    assert result.status == "succeeded", result.error
    assert service.requests[0]["body"] == "ip=218.86.179.185&raw=1"
    assert service.requests[0]["method"] == "POST"


@pytest.mark.asyncio
async def test_json_bodies_escape_filled_strings(service):
    defn = http_flow(
        service.base + "/echo", method="POST", bodyType="json", bodyJson='{"ip": "{{ip}}", "n": 1}'
    )
    result = await run(defn, {"ipAddress": 'say "hi"\nbye'})
    assert result.status == "succeeded", result.error
    request = service.requests[0]
    assert request["headers"]["content-type"] == "application/json"
    assert json.loads(request["body"]) == {"ip": 'say "hi"\nbye', "n": 1}


@pytest.mark.asyncio
async def test_invalid_json_body_fails_the_node(service):
    defn = http_flow(service.base + "/echo", method="post", bodyType="json", bodyJson="{not json")
    result = await run(defn)
    assert result.status == "failed"
    assert "bodyJson is not valid JSON" in result.error
    assert service.requests == []


@pytest.mark.asyncio
async def test_urlencoded_and_multipart_forms(service):
    form = [
        {"name": "ip", "refType": "ref", "ref": "start1.ipAddress"},
        {"name": "lang", "refType": "fixed", "value": "zh-{{ip}}"},
    ]
    defn = http_flow(
        service.base + "/echo", method="post", bodyType="x-www-form-urlencoded", formUrlencoded=form
    )
    result = await run(defn, {"ipAddress": "1.2.3.4"})
    assert result.status == "succeeded", result.error
    assert parse_qs(service.requests[0]["body"]) == {"ip": ["1.2.3.4"], "lang": ["zh-1.2.3.4"]}

    defn = http_flow(service.base + "/echo", method="post", bodyType="form-data", formData=form)
    result = await run(defn, {"ipAddress": "1.2.3.4"})
    assert result.status == "succeeded", result.error
    request = service.requests[1]
    assert request["headers"]["content-type"].startswith("multipart/form-data")
    assert 'name="ip"\r\n\r\n1.2.3.4\r\n' in request["body"]
    assert 'name="lang"\r\n\r\nzh-1.2.3.4\r\n' in request["body"]


@pytest.mark.asyncio
async def test_headers_take_fixed_values_with_placeholders_and_refs(service):
    headers = [
        {"name": "X-Ip", "refType": "ref", "ref": "start1.ipAddress"},
        {"name": "Authorization", "refType": "fixed", "value": "Bearer token-{{ip}}"},
    ]
    defn = http_flow(service.base + "/echo", headers=headers)
    result = await run(defn, {"ipAddress": "9.9.9.9"})
    assert result.status == "succeeded", result.error
    received = service.requests[0]["headers"]
    assert received["x-ip"] == "9.9.9.9"
    assert received["authorization"] == "Bearer token-9.9.9.9"
    assert http_step(result).meta["headers"]["Authorization"] == "***"


@pytest.mark.asyncio
async def test_text_responses_stay_text(service):
    result = await run(http_flow(service.base + "/text"))
    assert result.result["info"] == "纯文本"


@pytest.mark.asyncio
async def test_client_errors_are_outputs_not_failures(service):
    result = await run(http_flow(service.base + "/status/404"))
    assert result.status == "succeeded", result.error
    assert result.result == {"info": "status 404", "status": 404}


@pytest.mark.asyncio
async def test_server_errors_fail_the_node_so_retry_can_apply(service):
    defn = http_flow(
        service.base + "/status/503", retryEnable=True, maxRetryCount=1, retryIntervalMs=0
    )
    result = await run(defn)
    assert result.status == "failed"
    assert "answered HTTP 503: status 503 (after 2 attempts)" in result.error
    assert len(service.requests) == 2


@pytest.mark.asyncio
async def test_redirects_are_followed(service):
    result = await run(http_flow(service.base + "/redirect"))
    assert result.status == "succeeded", result.error
    assert result.result["info"]["query"] == "1.1.1.1"
    assert [r["path"] for r in service.requests] == ["/redirect", "/json/1.1.1.1"]


@pytest.mark.asyncio
async def test_redirect_loops_stop_after_five_hops(service):
    with pytest.raises(OutboundError, match="too many redirects"):
        await fetch("GET", service.base + "/loop", allow_private=True)
    assert len(service.requests) == 6


@pytest.mark.asyncio
async def test_oversized_responses_are_cut_off(service):
    limits = EngineLimits(http_allow_private=True, http_max_response_bytes=1000)
    result = await run(http_flow(service.base + "/big"), limits=limits)
    assert result.status == "failed"
    assert "response body too large" in result.error
