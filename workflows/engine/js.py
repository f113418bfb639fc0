"""Sandboxed JavaScript for code nodes and conditions.

Engine: V8 through mini-racer (``py_mini_racer``). Why V8 and not a Python interpreter of JS:
it is the engine AIFlowy users write for (modern syntax just works), and a V8 isolate has no
file, network, process or module access at all — there is no ``require``, ``fetch`` or
``process`` to take away, and we never expose a Python function to it. Every evaluation gets
a **fresh** context (its own isolate), so nothing leaks between nodes or runs, with a hard
heap limit (``js_memory_mb``) and a wall-clock limit (``js_timeout_ms``) enforced by V8
terminating the script. Values go in and out as JSON text only.

mini-racer calls block the calling thread, so they run on a dedicated thread and the event
loop stays free. One thread, not several: isolates created and run on two threads at once
crash the whole process now and then (mini-racer 0.14: a segmentation fault or a V8 FATAL in
about half of the runs that evaluate six scripts at once on four threads; none on one thread),
and a crashed server process takes every caller's request with it. JavaScript evaluations of
one process therefore run one at a time.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from py_mini_racer import (
    JSEvalException,
    JSOOMException,
    JSTimeoutException,
    mini_racer,
)

from .values import to_jsonable

__all__ = ["JS_WORKERS", "JsError", "eval_condition", "run_code"]

JS_WORKERS = 1
_EXECUTOR = ThreadPoolExecutor(max_workers=JS_WORKERS, thread_name_prefix="workflow-js")
_LOOP_LOCK = threading.Lock()
_LOOPS: list[asyncio.AbstractEventLoop] = []


def _racer_loop() -> asyncio.AbstractEventLoop:
    """The one long-lived loop on which mini-racer delivers V8 callbacks.

    Without it mini-racer starts and stops a loop thread per isolate, and a callback that V8
    sends after a terminated (timed-out) script would hit a closed loop.
    """
    with _LOOP_LOCK:
        if not _LOOPS:
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="workflow-js-loop", daemon=True).start()
            _LOOPS.append(loop)
        return _LOOPS[0]


# Installed before user code. Captures ``eval``, ``globalThis`` and the JSON helpers, so a
# variable or user code that reassigns them cannot break how values go in and come back.
_PRELUDE = """
const __aiflowy = (function () {
  const root = globalThis;
  const globalEval = eval;
  const stringify = JSON.stringify;
  const parse = JSON.parse;
  return Object.freeze({
    evaluate(code) {
      // Indirect eval: runs as a global script; the completion value stays inside V8.
      return (0, globalEval)(code);
    },
    truthy(value) {
      // Tinyflow's rule: null/undefined, 0, NaN, "", "0" and "false" are false.
      if (value === null || value === undefined) { return false; }
      if (typeof value === "boolean") { return value; }
      if (typeof value === "number" || typeof value === "bigint") {
        return value == 0 || value !== value ? false : true;
      }
      if (typeof value === "string") {
        const text = value.trim().toLowerCase();
        return !(text === "" || text === "0" || text === "false");
      }
      return true;
    },
    define(text, withResult) {
      const values = parse(text);
      for (const key of Object.keys(values)) { root[key] = values[key]; }
      if (withResult) { root._result = {}; }
    },
    result() {
      if (typeof _result !== "object" || _result === null || Array.isArray(_result)) {
        throw new TypeError("_result must be an object, got " + typeof _result);
      }
      return stringify(_result);
    },
  });
})();
"""

_LOCATION_RE = re.compile(r"^(?:<anonymous>|undefined):(\d+): (.*)$")


class JsError(Exception):
    """The script failed, timed out or ran out of memory; the message says which."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _readable(exc: Exception) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    match = _LOCATION_RE.match(first)
    if match:
        return f"{match.group(2)} (line {match.group(1)})"
    return first


def _literal(values: Mapping[str, Any]) -> str:
    text = json.dumps(to_jsonable(dict(values)), ensure_ascii=False, allow_nan=False)
    return json.dumps(text)  # an ASCII-only JS string literal holding the JSON text


def _evaluate(steps: list[str], user_step: int, timeout_ms: int, memory_mb: int) -> Any:
    """Run ``steps`` in one fresh isolate; the whole sequence shares one time budget."""
    deadline = time.monotonic() + timeout_ms / 1000
    with mini_racer(event_loop=_racer_loop()) as racer:
        racer.set_hard_memory_limit(memory_mb * 1024 * 1024)
        result: Any = None
        for index, code in enumerate(steps):
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    raise JSTimeoutException()
                result = racer.eval(code, timeout_sec=remaining)
            except JSTimeoutException:
                raise JsError(f"JavaScript took longer than {timeout_ms} ms") from None
            except JSOOMException:
                raise JsError(f"JavaScript used more than {memory_mb} MB of memory") from None
            except JSEvalException as exc:
                if racer.was_hard_memory_limit_reached():
                    raise JsError(f"JavaScript used more than {memory_mb} MB of memory") from None
                message = _readable(exc)
                if index != user_step:
                    message = message.rsplit(" (line ", 1)[0]
                raise JsError(message) from None
        return result


async def _in_pool(steps: list[str], user_step: int, timeout_ms: int, memory_mb: int) -> Any:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_EXECUTOR, _evaluate, steps, user_step, timeout_ms, memory_mb)


async def run_code(
    code: str, variables: Mapping[str, Any], *, timeout_ms: int, memory_mb: int
) -> dict[str, Any]:
    """Run a code node's script with ``variables`` as globals; return what it put in
    ``_result`` (Tinyflow's contract)."""
    steps = [
        _PRELUDE,
        f"__aiflowy.define({_literal(variables)}, true); undefined",
        # The completion value is dropped inside V8: a value such as a BigInt could not be
        # handed back to Python.
        f"__aiflowy.evaluate({json.dumps(code)}); undefined",
        "__aiflowy.result()",
    ]
    text = await _in_pool(steps, 2, timeout_ms, memory_mb)
    if not isinstance(text, str):
        raise JsError("_result could not be converted to JSON")
    try:
        result = json.loads(text)
    except ValueError:
        raise JsError("_result could not be converted to JSON") from None
    return result if isinstance(result, dict) else {}


async def eval_condition(
    expression: str, variables: Mapping[str, Any], *, timeout_ms: int, memory_mb: int
) -> bool:
    """Evaluate a condition (its completion value, e.g. ``statusCode == 200``) as a boolean."""
    steps = [
        _PRELUDE,
        f"__aiflowy.define({_literal(variables)}); undefined",
        # The completion value, reduced to a boolean inside V8.
        f"__aiflowy.truthy(__aiflowy.evaluate({json.dumps(expression)}))",
    ]
    return await _in_pool(steps, 2, timeout_ms, memory_mb) is True
