"""Sandboxed JavaScript for code nodes and conditions.

Engine: V8 through mini-racer (``py_mini_racer``). Why V8 and not a Python interpreter of JS:
it is the engine AIFlowy users write for (modern syntax just works), and a V8 isolate has no
file, network, process or module access at all — there is no ``require``, ``fetch`` or
``process`` to take away, and we never expose a Python function to it. Values go in and out
as JSON text only, as data: a script's variables are parsed from a JSON string inside V8,
never spliced into source code.

**Reused isolates, reset between evaluations.** Creating an isolate costs ~4 ms, far more
than a typical script, so each worker thread keeps one isolate and resets it after (and
verifies it before) every evaluation. What makes a reset complete:

* the prelude freezes every built-in object reachable from the global object (``Array``,
  ``Object.prototype``, ``JSON``…), so a script cannot change what the next one sees;
* the global object's own properties are put back as they were (added ones deleted,
  reassigned ones restored, prototype and extensibility checked); if anything cannot be put
  back, the isolate is thrown away and a fresh one is made;
* nothing can call back later: timers, ``WeakRef``/``FinalizationRegistry``, ``Atomics``,
  ``SharedArrayBuffer`` and WebAssembly are removed, and RegExp's legacy statics
  (``RegExp.$1``, ``RegExp.input``: the last match of *any* script) are deleted;
* an isolate that timed out, ran out of memory or failed in an unexpected way is discarded.

**A real memory limit.** ``js_memory_mb`` is V8's hard heap limit. ``ArrayBuffer`` (and the
typed arrays and ``DataView`` over it) allocate *outside* the heap, where no limit reaches
(``new ArrayBuffer(1536 * 1024 * 1024)`` filled in a 32 MB sandbox took a worker to 2.9 GB),
so binary buffers are not available to scripts; strings, arrays and objects are on the heap.

**Threads.** ``JS_WORKERS`` threads evaluate in parallel; each owns its isolate and only that
thread ever uses it. Isolates are created and destroyed one at a time (``_LIFECYCLE_LOCK``):
mini-racer 0.14 crashed the process (segfault / V8 FATAL) when fresh isolates were created,
used and destroyed on several threads at once for every evaluation.
"""

from __future__ import annotations

import asyncio
import json
import os
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
    init_mini_racer,
    mini_racer,
)

from .values import to_jsonable

# V8 is initialised once per process, here, on the importing (main) thread. Initialised
# lazily on a worker thread instead, the *second* isolate made on another worker thread
# crashes the process (segfault in ``mr_init_context``, mini-racer 0.14.1, on this machine kind
# too); ``test_parallel_code_nodes_do_not_crash_the_process`` keeps it proven.
init_mini_racer(ignore_duplicate_init=True)

__all__ = ["JS_WORKERS", "JsError", "eval_condition", "run_code"]

JS_WORKERS = max(1, min(8, int(os.environ.get("AIFLOWY_JS_WORKERS") or (os.cpu_count() or 1))))
# An isolate is replaced after this many evaluations, so that whatever V8 keeps per isolate
# (compiled code caches, the symbol registry) stays bounded.
MAX_EVALUATIONS_PER_ISOLATE = 2000

_EXECUTOR = ThreadPoolExecutor(max_workers=JS_WORKERS, thread_name_prefix="workflow-js")
_LOOP_LOCK = threading.Lock()
_LIFECYCLE_LOCK = threading.Lock()
_LOOPS: list[asyncio.AbstractEventLoop] = []
_LOCAL = threading.local()


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


# Installed once per isolate, before any user code. Captures the helpers it needs, so user
# code that reassigns ``eval``, ``JSON`` or ``Object`` cannot change how values go in and out.
_PRELUDE = r"""
const __aiflowy = (function () {
  const root = globalThis;
  const globalEval = eval;
  const stringify = JSON.stringify;
  const parse = JSON.parse;
  const { freeze, isFrozen, getPrototypeOf, isExtensible, defineProperty, keys,
          getOwnPropertyDescriptors, getOwnPropertyDescriptor } = Object;
  const ownKeys = Reflect.ownKeys;
  const deleteProperty = Reflect.deleteProperty;
  const SetCtor = Set;
  const setHas = Set.prototype.has;
  const setAdd = Set.prototype.add;
  const call = Function.prototype.call.bind(Function.prototype.call);

  // mini-racer's setTimeout lives on Atomics.waitAsync; "var" globals cannot be deleted.
  setTimeout = undefined; clearTimeout = undefined; __timer_manager = undefined;
  __TimerManager = undefined;
  for (const name of [
    "ArrayBuffer", "SharedArrayBuffer", "DataView", "Atomics", "WebAssembly",
    "Int8Array", "Uint8Array", "Uint8ClampedArray", "Int16Array", "Uint16Array",
    "Int32Array", "Uint32Array", "Float16Array", "Float32Array", "Float64Array",
    "BigInt64Array", "BigUint64Array", "WeakRef", "FinalizationRegistry", "queueMicrotask",
    "console",
  ]) { delete root[name]; }
  for (const name of ownKeys(RegExp)) {
    if (typeof name === "string" && (name.startsWith("$") || ["input", "lastMatch",
        "lastParen", "leftContext", "rightContext"].includes(name))) {
      delete RegExp[name];
    }
  }

  // Freeze every built-in reachable from the global object.
  const seen = new SetCtor();
  const pending = [];
  for (const key of ownKeys(root)) {
    const descriptor = getOwnPropertyDescriptor(root, key);
    for (const part of [descriptor.value, descriptor.get, descriptor.set]) { pending.push(part); }
  }
  while (pending.length) {
    const value = pending.pop();
    if (value === null || (typeof value !== "object" && typeof value !== "function")) { continue; }
    if (value === root || call(setHas, seen, value)) { continue; }
    call(setAdd, seen, value);
    freeze(value);
    pending.push(getPrototypeOf(value));
    const descriptors = getOwnPropertyDescriptors(value);
    for (const key of ownKeys(descriptors)) {
      const d = descriptors[key];
      pending.push(d.value, d.get, d.set);
    }
  }

  // The global object as it must be before and after every evaluation.
  const baseline = new Map();
  for (const key of ownKeys(root)) { baseline.set(key, getOwnPropertyDescriptor(root, key)); }
  const baselineProto = getPrototypeOf(root);
  const same = (a, b) => a.value === b.value && a.get === b.get && a.set === b.set &&
    a.writable === b.writable && a.enumerable === b.enumerable &&
    a.configurable === b.configurable;

  function reset() {
    // True when the global object is back to its baseline.
    for (const key of ownKeys(root)) {
      if (!baseline.has(key)) {
        if (!deleteProperty(root, key)) { return false; }
      }
    }
    for (const [key, descriptor] of baseline) {
      const now = getOwnPropertyDescriptor(root, key);
      if (now === undefined || !same(now, descriptor)) {
        try { defineProperty(root, key, descriptor); } catch (e) { return false; }
      }
    }
    return getPrototypeOf(root) === baselineProto && isExtensible(root);
  }

  function truthy(value) {
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
  }

  function deepFreeze(value) {
    if (value !== null && typeof value === "object" && !isFrozen(value)) {
      freeze(value);
      for (const key of keys(value)) { deepFreeze(value[key]); }
    }
    return value;
  }

  function define(valuesText, readOnlyText) {
    const values = parse(valuesText);
    for (const key of keys(values)) {
      // defineProperty, not assignment: a name such as "toString" is inherited from the
      // frozen Object.prototype, where assignment would silently do nothing.
      try {
        defineProperty(root, key, {
          value: values[key], writable: true, enumerable: true, configurable: true,
        });
      } catch (e) { /* a fixed global such as undefined or NaN keeps its value */ }
    }
    const readOnly = parse(readOnlyText);
    for (const key of keys(readOnly)) {
      defineProperty(root, key, {
        value: deepFreeze(readOnly[key]), writable: false, enumerable: false, configurable: true,
      });
    }
  }

  return freeze({
    // One evaluation: "dirty" means the isolate must be thrown away.
    run(kind, code, valuesText, readOnlyText, setup) {
      if (!reset()) { return stringify({ dirty: true }); }
      let outcome;
      try {
        outcome = evaluate(kind, code, valuesText, readOnlyText, setup);
      } finally {
        // (finally, not catch and rethrow: a rethrow would move the error's line here)
        if (outcome === undefined) { reset(); }
      }
      // Reset now, so the next evaluation starts clean; "unclean": replace the isolate.
      return reset() ? outcome : outcome.slice(0, -1) + ',"unclean":true}';
    },
  });

  function evaluate(kind, code, valuesText, readOnlyText, setup) {
    define(valuesText, readOnlyText);
    if (kind === "code") { root._result = {}; }
    if (setup) { (0, globalEval)(setup); }
    // Indirect eval: runs as a global script (its let/const stay local to it); the
    // completion value stays inside V8.
    const completion = (0, globalEval)(code);
    if (kind === "condition") { return stringify({ value: truthy(completion) }); }
    const result = root._result;
    if (typeof result !== "object" || result === null || Array.isArray(result)) {
      return stringify({ error: "TypeError: _result must be an object, got " +
        (result === null ? "null" : Array.isArray(result) ? "array" : typeof result) });
    }
    let text;
    try { text = stringify(result); } catch (e) {
      return stringify({ error: "_result could not be converted to JSON" });
    }
    return text === undefined ? stringify({ value: {} }) : '{"value":' + text + "}";
  }
})();
"""

_LOCATION_RE = re.compile(r"^(?:<anonymous>|undefined):(\d+): (.*)$")
_DIRTY = object()


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


def _json_literal(value: Any) -> str:
    text = json.dumps(to_jsonable(value), ensure_ascii=False, allow_nan=False)
    return json.dumps(text)  # an ASCII-only JS string literal holding the JSON text


class _Isolate:
    """One V8 isolate, owned and used by exactly one worker thread."""

    def __init__(self) -> None:
        with _LIFECYCLE_LOCK:
            self._manager = mini_racer(event_loop=_racer_loop())
            self.racer = self._manager.__enter__()
            try:
                self.racer.eval(_PRELUDE)
            except BaseException:
                self._manager.__exit__(None, None, None)
                raise
        self.evaluations = 0

    def close(self) -> None:
        with _LIFECYCLE_LOCK:
            self._manager.__exit__(None, None, None)


def _isolate() -> _Isolate:
    isolate: _Isolate | None = getattr(_LOCAL, "isolate", None)
    if isolate is None or isolate.evaluations >= MAX_EVALUATIONS_PER_ISOLATE:
        if isolate is not None:
            _discard(isolate)
        isolate = _Isolate()
        _LOCAL.isolate = isolate
    return isolate


def _discard(isolate: _Isolate) -> None:
    if getattr(_LOCAL, "isolate", None) is isolate:
        _LOCAL.isolate = None
    isolate.close()


def _evaluate(script: str, timeout_ms: int, memory_mb: int) -> Any:
    """Run one ``__aiflowy.run(...)`` call in this thread's isolate; a fresh isolate if the
    current one cannot be reset."""
    for _ in range(2):
        isolate = _isolate()
        isolate.evaluations += 1
        racer = isolate.racer
        racer.set_hard_memory_limit(memory_mb * 1024 * 1024)
        started = time.monotonic()
        try:
            text = racer.eval(script, timeout_sec=timeout_ms / 1000)
        except JSTimeoutException:
            _discard(isolate)
            raise JsError(f"JavaScript took longer than {timeout_ms} ms") from None
        except JSOOMException:
            _discard(isolate)
            raise JsError(f"JavaScript used more than {memory_mb} MB of memory") from None
        except JSEvalException as exc:
            if racer.was_hard_memory_limit_reached():
                _discard(isolate)
                raise JsError(f"JavaScript used more than {memory_mb} MB of memory") from None
            # Whatever the failed script left behind is reset (or the isolate replaced) by
            # the check that starts the next evaluation.
            raise JsError(_readable(exc)) from None
        except Exception:
            _discard(isolate)
            raise
        outcome = json.loads(text) if isinstance(text, str) else {}
        if outcome.get("dirty"):
            # The previous script left something that cannot be reset: start over.
            _discard(isolate)
            if time.monotonic() - started > timeout_ms / 1000:
                raise JsError(f"JavaScript took longer than {timeout_ms} ms")
            continue
        if outcome.get("unclean"):
            _discard(isolate)
        if "error" in outcome:
            raise JsError(outcome["error"])
        return outcome.get("value")
    raise JsError("the JavaScript sandbox could not be reset")


def _script(
    kind: str,
    code: str,
    variables: Mapping[str, Any],
    read_only: Mapping[str, Any] | None,
    setup: str | None,
) -> str:
    return (
        f"__aiflowy.run({json.dumps(kind)}, {json.dumps(code)}, "
        f"{_json_literal(dict(variables))}, {_json_literal(dict(read_only or {}))}, "
        f"{json.dumps(setup or '')})"
    )


async def _in_pool(script: str, timeout_ms: int, memory_mb: int) -> Any:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_EXECUTOR, _evaluate, script, timeout_ms, memory_mb)


async def run_code(
    code: str,
    variables: Mapping[str, Any],
    *,
    timeout_ms: int,
    memory_mb: int,
    read_only: Mapping[str, Any] | None = None,
    setup: str | None = None,
) -> dict[str, Any]:
    """Run a code node's script with ``variables`` as globals; return what it put in
    ``_result`` (Tinyflow's contract).

    ``read_only``: more globals (JSON data, deep-frozen, not assignable), e.g. the engine's
    view of the run. ``setup``: trusted engine-written JavaScript run just before the script
    in the same evaluation (e.g. to wrap ``read_only`` data in objects with methods).
    """
    script = _script("code", code, variables, read_only, setup)
    result = await _in_pool(script, timeout_ms, memory_mb)
    return result if isinstance(result, dict) else {}


async def eval_condition(
    expression: str,
    variables: Mapping[str, Any],
    *,
    timeout_ms: int,
    memory_mb: int,
    read_only: Mapping[str, Any] | None = None,
    setup: str | None = None,
) -> bool:
    """Evaluate a condition (its completion value, e.g. ``statusCode == 200``) as a boolean."""
    script = _script("condition", expression, variables, read_only, setup)
    return await _in_pool(script, timeout_ms, memory_mb) is True
