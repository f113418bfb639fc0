"""A loopback share-link auth server (FastGPT's `shareAuth` hooks) that records every call.

Its answer is chosen by the token the page was opened with, so one server serves every test:
- `refuse…`: `{"success": false, "message": "Your subscription has ended."}`;
- `garbage…`: an HTML page, not JSON;
- `nosuccess…`: JSON without a `success` flag;
- `slow…`: answers after `slow_seconds` (longer than the configured hook timeout);
- `uid-<name>…`: success naming the user `<name>` (`data.uid`);
- `startrefuse…`: init says yes, start says no;
- anything else: `{"success": true}`.
finish: `finishfail…` answers HTTP 500; `slowfinish…` answers after `slow_finish_seconds`
(init and start answer it at once); else OK.

`calls` holds `(hook, body)` in arrival order; `finished_answering` the finish bodies whose
answer was fully sent (so a test can tell "received" from "answered").
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeShareAuth:
    def __init__(self, slow_seconds: float = 3.0, slow_finish_seconds: float = 2.0) -> None:
        self.slow_seconds = slow_seconds
        self.slow_finish_seconds = slow_finish_seconds
        self.calls: list[tuple[str, dict]] = []
        self.finished_answering: list[dict] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeShareAuth:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def clear(self) -> None:
        with self._lock:
            self.calls.clear()
            self.finished_answering.clear()

    def hooks(self, name: str) -> list[dict]:
        with self._lock:
            return [body for hook, body in self.calls if hook == name]

    def _answer(self, hook: str, body: dict) -> tuple[int, str, bytes]:
        token = str(body.get("token", ""))
        ok = (200, "application/json", b'{"success": true}')
        if hook == "finish":
            if token.startswith("finishfail"):
                return 500, "application/json", b'{"success": false}'
            if token.startswith("slowfinish"):
                time.sleep(self.slow_finish_seconds)
            return ok
        if token.startswith("slow") and not token.startswith("slowfinish"):
            time.sleep(self.slow_seconds)
            return ok
        if token.startswith("refuse") or (hook == "start" and token.startswith("startrefuse")):
            message = {"success": False, "message": "Your subscription has ended."}
            return 200, "application/json", json.dumps(message).encode()
        if token.startswith("garbage"):
            return 200, "text/html", b"<html><body>Welcome!</body></html>"
        if token.startswith("nosuccess"):
            return 200, "application/json", b'{"ok": true}'
        if token.startswith("uid-"):
            uid = token.removeprefix("uid-").split(".")[0]
            answer = {"success": True, "data": {"uid": uid}}
            return 200, "application/json", json.dumps(answer).encode()
        return ok

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        auth = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = {"_raw": raw.decode("utf-8", "replace")}
                hook = self.path.rsplit("/", 1)[-1] if self.path.startswith("/shareAuth/") else ""
                with auth._lock:
                    auth.calls.append((hook or self.path, body))
                status, content_type, payload = auth._answer(hook, body)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:  # the caller gave up waiting (a timeout test)
                    return
                if hook == "finish":
                    with auth._lock:
                        auth.finished_answering.append(body)

        return Handler
