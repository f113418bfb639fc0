"""Sandboxed JavaScript for code nodes and conditions.

Engine: V8 through mini-racer (``py_mini_racer``). Why V8 and not a Python interpreter of JS:
it is the engine AIFlowy users write for (modern syntax just works), and a V8 isolate has no
file, network, process or module access at all — there is no ``require``, ``fetch`` or
``process`` to take away, and we never expose a Python function to it. Values go in and out
as JSON text only, as data: a script's variables are parsed from a JSON string inside V8,
never spliced into source code.

**Reused isolates, reset between evaluations.** Making an isolate costs ~15 ms, far more
than a typical script, so isolates are kept (see below) and each is reset at the start of
every evaluation, before any script code runs (once, not also after: whatever a script
leaves, including what its promise callbacks do after it returned, is unreachable until that
reset removes it). What makes a reset complete:

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

**Isolates per event loop, no thread hand-offs.** Each event loop that runs scripts has a
pool of up to ``JS_WORKERS`` isolates bound to it: an evaluation takes an idle isolate, starts
the script with mini-racer's ``eval_cancelable`` and awaits it, so V8 runs on its own thread
while the loop goes on, and the answer comes back to the loop in one hop. (Evaluating through a
worker thread, which then waited on a separate mini-racer loop, cost four more thread
hand-offs per script: ~0.3 ms of a code node's ~0.5 ms.) An isolate is used by one evaluation
at a time. Isolates are made and freed in a worker thread, one at a time
(``_on_lifecycle_thread``), so making one (~15 ms) never stalls a loop; the pool of a loop that
has closed (e.g. one of ``async_to_sync``'s) is freed when the next pool is made.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import queue
import re
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from functools import partial
from typing import Any

from py_mini_racer import (
    JSEvalException,
    JSOOMException,
    init_mini_racer,
    mini_racer,
)

from .values import to_jsonable

# V8 is initialised once per process, here, on the importing (main) thread. Initialised
# lazily on a worker thread instead, the *second* isolate made on another worker thread
# crashed the process (segfault in ``mr_init_context``, mini-racer 0.14.1, on this project's
# CI machine kind); ``test_parallel_code_nodes_do_not_crash_the_process`` keeps it proven.
init_mini_racer(ignore_duplicate_init=True)

__all__ = ["JS_WORKERS", "JsError", "eval_condition", "run_code"]

JS_WORKERS = max(1, min(8, int(os.environ.get("AIFLOWY_JS_WORKERS") or (os.cpu_count() or 1))))
# An isolate is replaced after this many evaluations, so that whatever V8 keeps per isolate
# (compiled code caches, the symbol registry) stays bounded.
MAX_EVALUATIONS_PER_ISOLATE = 2000

_LIFECYCLE_LOCK = threading.Lock()
_LIFECYCLE_JOBS: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
_POOLS_LOCK = threading.Lock()
_POOLS: dict[asyncio.AbstractEventLoop, _Pool] = {}


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
    // One evaluation. The global object is put back *before* the script (what the last
    // one left, including what its promise callbacks did after it returned, is removed
    // before any other code runs); "dirty": it could not be, so the isolate is replaced.
    run(kind, code, valuesText, readOnlyText, setup) {
      if (!reset()) { return stringify({ dirty: true }); }
      return evaluate(kind, code, valuesText, readOnlyText, setup);
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
    """One V8 isolate bound to one event loop; used by one evaluation at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        # Runs in a worker thread; MiniRacer's own set-up script runs on ``loop``.
        with _LIFECYCLE_LOCK:
            self._manager = mini_racer(event_loop=loop)
            self.racer = self._manager.__enter__()
        self.evaluations = 0

    def close(self) -> None:
        with _LIFECYCLE_LOCK:
            self._manager.__exit__(None, None, None)


class _Pool:
    """The isolates of one event loop: at most ``JS_WORKERS``, idle ones reused."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.idle: list[_Isolate] = []
        self.slots = asyncio.Semaphore(JS_WORKERS)
        self.made: set[_Isolate] = set()

    async def take(self) -> _Isolate:
        await self.slots.acquire()
        try:
            while self.idle:
                isolate = self.idle.pop()
                if isolate.evaluations < MAX_EVALUATIONS_PER_ISOLATE:
                    return isolate
                self.discard(isolate)
            making = _on_lifecycle_thread(partial(_Isolate, self.loop))
            try:
                isolate = await asyncio.wrap_future(making)
            except asyncio.CancelledError:
                making.add_done_callback(_close_unwanted)
                raise
            self.made.add(isolate)
            try:
                await isolate.racer.eval_cancelable(_PRELUDE)
            except BaseException:
                self.discard(isolate)
                raise
            return isolate
        except BaseException:
            self.slots.release()
            raise

    def give_back(self, isolate: _Isolate) -> None:
        if isolate in self.made:
            self.idle.append(isolate)
        self.slots.release()

    def discard(self, isolate: _Isolate) -> None:
        """Free ``isolate`` (in a worker thread); it is never handed out again."""
        if isolate in self.made:
            self.made.discard(isolate)
            _on_lifecycle_thread(isolate.close)

    def close_all(self) -> None:
        """Free every isolate of a closed loop (called from another thread)."""
        made, self.made = list(self.made), set()
        self.idle.clear()
        for isolate in made:
            isolate.close()


def _lifecycle_worker() -> None:
    while True:
        job, future = _LIFECYCLE_JOBS.get()
        if future.set_running_or_notify_cancel():
            try:
                future.set_result(job())
            except BaseException as exc:
                future.set_exception(exc)


def _on_lifecycle_thread(job: Callable[[], Any]) -> Future[Any]:
    """Run ``job`` on the one thread that makes and frees isolates (so no loop waits for
    that, nor for another loop's). A daemon thread: making an isolate waits for its loop,
    and a loop that closed meanwhile must not keep the process from exiting."""
    future: Future[Any] = Future()
    _LIFECYCLE_JOBS.put((job, future))
    return future


threading.Thread(target=_lifecycle_worker, name="workflow-js-isolates", daemon=True).start()


def _close_unwanted(making: Future[Any]) -> None:
    """An isolate finished being made for an evaluation that was cancelled: free it."""
    if not making.cancelled() and making.exception() is None:
        _on_lifecycle_thread(making.result().close)


@atexit.register
def _close_pools() -> None:
    """Free every isolate before the interpreter finalises: freed during finalisation (by
    the garbage collector), a V8 thread that calls back into Python waits forever for the
    GIL and the process never exits."""
    with _POOLS_LOCK:
        while _POOLS:
            _POOLS.popitem()[1].close_all()


def _pool() -> _Pool:
    loop = asyncio.get_running_loop()
    pool = _POOLS.get(loop)
    if pool is None:
        with _POOLS_LOCK:
            for other in [other for other in _POOLS if other.is_closed()]:
                _POOLS.pop(other).close_all()
            pool = _POOLS[loop] = _Pool(loop)
    return pool


async def _evaluate(script: str, timeout_ms: int, memory_mb: int) -> Any:
    """Run one ``__aiflowy.run(...)`` call in an isolate of this loop's pool; a fresh isolate
    if the one taken cannot be reset."""
    pool = _pool()
    started = time.monotonic()
    for _ in range(2):
        isolate = await pool.take()
        try:
            isolate.evaluations += 1
            racer = isolate.racer
            racer.set_hard_memory_limit(memory_mb * 1024 * 1024)
            try:
                async with asyncio.timeout(timeout_ms / 1000):
                    text = await racer.eval_cancelable(script)
            except TimeoutError:
                pool.discard(isolate)
                raise JsError(f"JavaScript took longer than {timeout_ms} ms") from None
            except JSOOMException:
                pool.discard(isolate)
                raise JsError(f"JavaScript used more than {memory_mb} MB of memory") from None
            except JSEvalException as exc:
                if racer.was_hard_memory_limit_reached():
                    pool.discard(isolate)
                    raise JsError(f"JavaScript used more than {memory_mb} MB of memory") from None
                # Whatever the failed script left behind is reset (or the isolate replaced)
                # by the check that starts the next evaluation.
                raise JsError(_readable(exc)) from None
            except BaseException:
                # Cancelled (the run was cancelled or another branch failed) or unexpected:
                # V8 may still be winding the script down, so this isolate is not reused.
                pool.discard(isolate)
                raise
            outcome = json.loads(text) if isinstance(text, str) else {}
            if outcome.get("dirty"):
                # The previous script left something that cannot be reset: start over on
                # a fresh isolate.
                pool.discard(isolate)
        finally:
            pool.give_back(isolate)
        if outcome.get("dirty"):
            if time.monotonic() - started > timeout_ms / 1000:
                raise JsError(f"JavaScript took longer than {timeout_ms} ms")
            continue
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
    result = await _evaluate(script, timeout_ms, memory_mb)
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
    return await _evaluate(script, timeout_ms, memory_mb) is True
