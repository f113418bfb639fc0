"""Run a validated workflow: topological, concurrent, with retries and time limits.

(Longer than our usual module on purpose: it is one state machine, the scheduler of a run,
whose steps, events, time limits and cancellation read best together. What each node type
does lives in ``nodes/``, one module per type.)

How a run proceeds (our semantics, which fix Tinyflow's where the compatibility table says so):

* The start node runs first; the run's memory starts with the caller's (validated) variables.
  Each finished node's output ``k`` is stored as ``<nodeId>.<k>``.
* An edge *fires* when its source succeeded and its ``data.condition`` (if any) holds; it is
  *skipped* when the condition does not hold or its source was skipped. A node runs once,
  as soon as every incoming edge is resolved and at least one fired; if all were skipped the
  node is skipped too and passes the skip on. Independent branches run concurrently as
  asyncio tasks (at most ``max_parallel_nodes`` at a time).
* A node's own ``data.condition`` is checked when it becomes ready; false → skipped.
* Conditions are JavaScript evaluated in the sandbox (see :mod:`.js`). They see, like
  Tinyflow's: every output by its bare name (``statusCode``; later nodes win), the caller's
  variables by name, and — for an edge — the source node's outputs by name (these win). In
  addition: ``start1.ipAddress`` style access through objects named after node ids,
  ``globalThis["start1.ipAddress"]`` and ``_memory["start1.ipAddress"]`` for the flat keys,
  ``_edge`` (``id``, ``source``, ``target``) for edge conditions and the node's resolved
  parameters for node conditions. Only values whose name occurs in the condition's text are
  copied into the sandbox (keeps a 5 MB HTTP body out of every condition).
* Retries (``retryEnable``, ``maxRetryCount`` retries after the first attempt, waiting
  ``retryIntervalMs``) and the per-node timeout apply to each attempt. The first node that
  fails for good cancels everything still running; the run fails naming that node.
* The run succeeds when everything reachable has finished and at least one end node ran; its
  result is the end nodes' outputs (merged in definition order if several ran). A run in
  which every end node was skipped fails with a message saying so.
* Events (typed, ``aiflowy.events``): ``NodeStarted`` when a node begins (after its condition
  held), ``LlmToken`` for each streamed delta, ``NodeFinished`` with the node's status, and
  ``RunFinished`` last. A node skipped by conditions, or whose own condition could not be
  evaluated, gets only a ``NodeFinished`` event.
* Node loops (Tinyflow's ``loopEnable``): after a node succeeds it runs again until
  ``maxLoopCount`` re-runs were made or ``loopBreakCondition`` (a condition that also sees the
  node's outputs and ``_state``) holds, waiting ``loopIntervalMs`` between runs; each run is
  a step of its own. A ``loopNode`` runs its body (the nodes whose ``parentId`` is the loop)
  once per item, each iteration a scope of its own scheduled as above (see ``nodes/loop``).
  A back-edge (``definition.back_edges``) that fires runs its loop region again from its
  target, and the source's other edges wait for the pass on which no back-edge fires.
  Every re-run, iteration and pass counts against the run's ``max_loop_iterations``; going
  past it fails the node that tried.
* Scripts (code nodes and every condition) may use Tinyflow's ``_state`` and ``_chain``
  (:mod:`.state`).
* Suspension: a node that waits for a person (``confirmNode``, or required ``input``
  parameters nobody gave) raises ``NodeSuspended``. Other branches go on; when nothing else
  can run, the run ends with status ``suspended``, ``waiting_for`` saying what it waits for
  and a JSON ``snapshot`` from which :func:`resume_workflow` continues it — in any process —
  with the values a person gave. Nodes inside a loop body cannot suspend.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any, Literal

from aiflowy.events import NodeFinished, NodeStarted, RunEvent, RunFinished
from aiflowy.outbound import OutboundError

from .definition import EdgeDef, NodeDef, WorkflowDefinition
from .errors import InputError, NodeFailed, NodeSuspended
from .inputs import validate_inputs
from .js import JsError, eval_condition
from .nodes import NODE_TYPES, NodeContext, execute_node, resolve_parameters
from .ports import EngineLimits, KnowledgePort, LlmPort
from .state import NodeCounters, script_state
from .values import CoercionError, RunMemory, coerce, is_blank, parse_data_type, to_jsonable

logger = logging.getLogger(__name__)

EventCallback = Callable[[RunEvent], Awaitable[None]]
StepStatus = Literal["succeeded", "failed", "skipped", "suspended"]
RunStatus = Literal["succeeded", "failed", "timeout", "suspended"]
SNAPSHOT_VERSION = 1


@dataclass(slots=True)
class StepRecord:
    """What one node did in a run (JSON-safe ``inputs``/``outputs``; times in UTC).

    ``meta`` carries extras for run history: the rendered prompts, model and token counts of
    an LLM node; method, URL, (masked) headers and status of an HTTP node; ``loop`` (the
    loopNode and index of the iteration a body node ran in), ``loopCount`` (which re-run of a
    looping node this was) and ``waitingFor`` (what a suspended node asks for).
    """

    node_id: str
    node_type: str
    title: str
    status: StepStatus
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    error: str | None
    started_at: datetime
    finished_at: datetime
    duration_ms: int
    attempts: int
    meta: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "node_id": self.node_id,
            "node_type": self.node_type,
            "title": self.title,
            "status": self.status,
            "inputs": self.inputs,
            "outputs": self.outputs,
            "error": self.error,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
            "duration_ms": self.duration_ms,
            "attempts": self.attempts,
            "meta": self.meta,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StepRecord:
        return cls(
            node_id=data["node_id"],
            node_type=data["node_type"],
            title=data.get("title") or "",
            status=data["status"],
            inputs=data.get("inputs") or {},
            outputs=data.get("outputs") or {},
            error=data.get("error"),
            started_at=datetime.fromisoformat(data["started_at"]),
            finished_at=datetime.fromisoformat(data["finished_at"]),
            duration_ms=int(data.get("duration_ms") or 0),
            attempts=int(data.get("attempts") or 0),
            meta=data.get("meta") or {},
        )


@dataclass
class RunResult:
    """The outcome of :func:`run_workflow`; ``result`` is set only when it succeeded.

    A ``suspended`` run has ``waiting_for`` (one entry per waiting node: ``nodeId``,
    ``title``, ``message``, ``fields``) and ``snapshot``, the JSON that
    :func:`resume_workflow` continues from.
    """

    status: RunStatus
    result: dict[str, Any] | None
    error: str | None
    failed_node_id: str | None
    steps: list[StepRecord]
    started_at: datetime
    finished_at: datetime
    duration_ms: int
    waiting_for: list[dict[str, Any]] | None = None
    snapshot: dict[str, Any] | None = None


def _now() -> datetime:
    return datetime.now(UTC)


def _describe_exception(exc: BaseException) -> str:
    if isinstance(exc, NodeFailed | JsError | OutboundError):
        return exc.message
    text = str(exc).strip()
    return text or type(exc).__name__


@dataclass(slots=True)
class _Outcome:
    node: NodeDef
    status: StepStatus
    started_at: datetime
    started_mono: float
    inputs: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    attempts: int = 0
    fired: frozenset[str] = frozenset()
    finished_at: datetime | None = None
    finished_mono: float | None = None
    waiting: dict[str, Any] | None = None
    loop_back: EdgeDef | None = None


class _Scope:
    """The nodes scheduled together: the main graph, or one iteration of a loop's body."""

    def __init__(self, run: _Run, parent: str | None) -> None:
        self.parent = parent
        self.tasks: dict[asyncio.Task[_Outcome], str] = {}
        # Nodes that may start, not started yet (``drive`` starts them).
        self.ready: list[str] = []
        self.pending: dict[str, int] = {}
        self.fired: dict[str, int] = {}
        self.fired_edges: set[str] = set()
        counts = run.defn.scope_counts(parent)
        self.pending = dict(counts)
        self.fired = dict.fromkeys(counts, 0)


class _Run:
    def __init__(
        self,
        defn: WorkflowDefinition,
        variables: Mapping[str, Any],
        llm: LlmPort,
        limits: EngineLimits,
        on_event: EventCallback | None,
        run_id: str = "",
        knowledge: KnowledgePort | None = None,
    ) -> None:
        self.defn = defn
        self.llm = llm
        self.knowledge = knowledge
        self.limits = limits
        self.on_event = on_event
        self.run_id = run_id
        self.memory = RunMemory(variables)
        self.steps: list[StepRecord] = []
        self.running: dict[str, tuple[datetime, float, NodeContext]] = {}
        self.semaphore = asyncio.Semaphore(max(1, limits.max_parallel_nodes))
        self.main = _Scope(self, None)
        self.end_outputs: dict[str, dict[str, Any]] = {}
        self.failure: _Outcome | None = None
        self.suspended: dict[str, dict[str, Any]] = {}
        self.counters: dict[str, NodeCounters] = {node_id: NodeCounters() for node_id in defn.nodes}
        self.iterations = 0
        self.loop_index: dict[str, int] = {}
        self.elapsed_before_ms = 0
        self.started_at: datetime | None = None
        # Derived from the graph once per definition (see WorkflowDefinition).
        self.next_edges = defn.next_edges
        self.order = defn.position
        self.incoming_ids = defn.incoming_ids

    # -- events and records --------------------------------------------------------------

    async def emit(self, event: RunEvent) -> None:
        if self.on_event is None:
            return
        try:
            await self.on_event(event)
        except Exception:
            logger.exception("workflow event listener failed on %s", type(event).__name__)

    def record(self, outcome: _Outcome) -> StepRecord:
        finished = outcome.finished_at or _now()
        finished_mono = outcome.finished_mono or time.monotonic()
        meta = dict(outcome.meta) if outcome.meta else {}
        parent = outcome.node.parent_id
        if parent is not None and parent in self.loop_index:
            meta["loop"] = {"nodeId": parent, "index": self.loop_index[parent]}
        if outcome.waiting is not None:
            meta["waitingFor"] = outcome.waiting
        step = StepRecord(
            node_id=outcome.node.id,
            node_type=outcome.node.type,
            title=outcome.node.title,
            status=outcome.status,
            inputs=to_jsonable(outcome.inputs),
            outputs=to_jsonable(outcome.outputs),
            error=outcome.error,
            started_at=outcome.started_at,
            finished_at=finished,
            duration_ms=max(0, round((finished_mono - outcome.started_mono) * 1000)),
            attempts=outcome.attempts,
            meta=to_jsonable(meta) if meta else {},
        )
        self.steps.append(step)
        return step

    async def finish_step(self, outcome: _Outcome) -> None:
        step = self.record(outcome)
        self.counters[outcome.node.id].status = outcome.status
        if self.on_event is None:
            return
        await self.emit(
            NodeFinished(
                node_id=step.node_id,
                node_type=step.node_type,
                title=step.title,
                status=step.status,
                outputs=step.outputs,
                error=step.error,
                duration_ms=step.duration_ms,
            )
        )

    # -- scripts and conditions ----------------------------------------------------------

    def script_state(self, self_id: str | None, text: str) -> tuple[str, dict[str, Any]]:
        return script_state(
            text,
            self_id=self_id,
            counters=self.counters,
            incoming=self.incoming_ids,
            memory=self.memory.values,
            run_id=self.run_id,
        )

    def condition_globals(self, expression: str, extra: Mapping[str, Any]) -> dict[str, Any]:
        stripped: dict[str, Any] = {}
        by_node: dict[str, dict[str, Any]] = {}
        flat: dict[str, Any] = {}
        bare: dict[str, Any] = {}
        for key, value in self.memory.values.items():
            node_id, dot, output = key.partition(".")
            if not dot:
                if key in expression:
                    bare[key] = value
                continue
            if node_id in expression or output in expression:
                stripped[output] = value
                by_node.setdefault(node_id, {})[output] = value
                flat[key] = value
        names = {**stripped, **bare, **by_node}
        names.update({key: value for key, value in extra.items() if key in expression})
        names.update(flat)
        names["_memory"] = flat
        return names

    async def check(
        self, expression: str, extra: Mapping[str, Any], *, self_id: str | None = None
    ) -> bool:
        names = self.condition_globals(expression, extra)
        prelude, state = self.script_state(self_id, expression)
        names.update(state)
        return await eval_condition(
            expression,
            names,
            setup=prelude or None,
            timeout_ms=self.limits.js_timeout_ms,
            memory_mb=self.limits.js_memory_mb,
        )

    # -- loops -----------------------------------------------------------------------------

    def count_iteration(self) -> None:
        self.iterations += 1
        cap = self.limits.max_loop_iterations
        if self.iterations > cap:
            raise NodeFailed(
                f"the run went past its limit of {cap} loop iterations "
                "(AIFLOWY_WORKFLOW_MAX_LOOP_ITERATIONS)"
            )

    async def run_body(self, loop: NodeDef, index: int, item: Any) -> None:
        """One iteration of ``loop``'s body (see ``nodes/loop``)."""
        self.count_iteration()
        self.memory.values[f"{loop.id}.index"] = index
        self.memory.values[f"{loop.id}.loopItem"] = item
        self.loop_index[loop.id] = index
        scope = _Scope(self, loop.id)
        try:
            for edge in self.defn.outgoing[loop.id]:
                if self.defn.nodes[edge.target].parent_id == loop.id:
                    await self.resolve_edge(scope, edge, True)
            failure = await self.drive(scope)
        except BaseException:
            await self.cancel_tasks(scope)
            raise
        where = f"iteration {index + 1} (index {index})"
        if failure is not None:
            await self.cancel_tasks(scope)
            raise NodeFailed(f"{where}: {failure.node.label} failed: {failure.error}")
        waiting = [node_id for node_id in scope.pending if node_id in self.suspended]
        if waiting:
            labels = ", ".join(self.defn.nodes[n].label for n in waiting)
            for node_id in waiting:
                self.suspended.pop(node_id)
            raise NodeFailed(f"{where}: {labels} waits for a person, which a loop body cannot")

    async def loop_stops(self, node: NodeDef, outputs: dict[str, Any], outcome: _Outcome) -> bool:
        counters = self.counters[node.id]
        if node.max_loop_count > 0 and counters.loop_count >= node.max_loop_count:
            return True
        if node.loop_break_condition:
            try:
                return await self.check(node.loop_break_condition, outputs, self_id=node.id)
            except JsError as exc:
                outcome.status, outcome.error = "failed", f"its loopBreakCondition failed: {exc}"
                return True
        return False

    async def check_loop_back(
        self, node: NodeDef, outputs: dict[str, Any], outcome: _Outcome
    ) -> None:
        """Does one of ``node``'s back-edges fire (Tinyflow's loop back to an earlier node)?
        The first that does is ``outcome.loop_back``; the node's other edges then wait for
        the pass that does not loop back."""
        for edge in self.defn.back_edges.get(node.id, ()):
            extra = {
                **outputs,
                "_edge": {"id": edge.id, "source": edge.source, "target": edge.target},
            }
            try:
                fires = edge.condition is None or await self.check(edge.condition, extra)
            except JsError as exc:
                outcome.status = "failed"
                outcome.error = (
                    f'the condition on edge "{edge.id}" (to "{edge.target}") failed: {exc}'
                )
                return
            if fires:
                try:
                    self.count_iteration()
                except NodeFailed as exc:
                    outcome.status, outcome.error = "failed", exc.message
                    return
                outcome.loop_back = edge
                outcome.meta["loopsBackTo"] = edge.target
                return

    def loop_back(self, scope: _Scope, edge: EdgeDef) -> None:
        """Run ``edge``'s region again from its target: the region's nodes wait for their
        edges inside the region afresh; edges from outside keep what they did."""
        region = self.defn.loop_regions[edge.id]
        for node_id in region:
            if node_id == edge.target:
                continue
            inside = [e for e in self.defn.incoming[node_id] if e.source in region]
            outside = [e for e in self.defn.incoming[node_id] if e.source not in region]
            scope.pending[node_id] = len(inside)
            scope.fired[node_id] = sum(1 for e in outside if e.id in scope.fired_edges)
            scope.fired_edges.difference_update(e.id for e in inside)
        counters = self.counters[edge.target]
        counters.trigger_count += 1
        counters.trigger_edge_ids.append(edge.id)
        self.launch(scope, edge.target)

    # -- one node ------------------------------------------------------------------------

    async def attempt(self, ctx: NodeContext) -> dict[str, Any]:
        limit = self.limits.node_timeout_s
        if ctx.node.type == "loopNode" or not NODE_TYPES[ctx.node.type].awaits:
            # A loop's body nodes have their own time limits (the run's limit bounds the
            # whole); a node that never waits cannot be interrupted by one.
            return await execute_node(ctx)
        try:
            async with asyncio.timeout(limit) as deadline:
                return await execute_node(ctx)
        except TimeoutError:
            if deadline.expired():
                raise NodeFailed(f"timed out after {limit:g} s") from None
            raise

    async def attempts(self, ctx: NodeContext, outcome: _Outcome) -> dict[str, Any] | None:
        """Run ``ctx.node`` with its retries; None when it failed or suspended (``outcome``
        says which)."""
        node = ctx.node
        allowed = 1 + (node.max_retry_count if node.retry_enable else 0)
        while True:
            outcome.attempts += 1
            ctx.inputs, ctx.meta = {}, {}
            try:
                return await self.attempt(ctx)
            except NodeSuspended as exc:
                outcome.status, outcome.error = "suspended", exc.message
                outcome.waiting = {
                    "nodeId": node.id,
                    "title": node.title,
                    "message": exc.prompt,
                    "fields": exc.fields,
                }
                return None
            except Exception as exc:
                error = _describe_exception(exc)
                if not isinstance(exc, NodeFailed | JsError | OutboundError):
                    logger.info("node %s raised %r", node.id, exc, exc_info=True)
                if outcome.attempts >= allowed:
                    if outcome.attempts > 1:
                        error = f"{error} (after {outcome.attempts} attempts)"
                    outcome.status, outcome.error = "failed", error
                    return None
                self.counters[node.id].retry_count += 1
                await asyncio.sleep(node.retry_interval_ms / 1000)

    def context(self, node: NodeDef) -> NodeContext:
        return NodeContext(
            node,
            self.memory,
            self.limits,
            self.llm,
            self.emit if self.on_event is not None else None,
            script_state=partial(self.script_state, node.id),
            run_body=partial(self.run_body, node) if node.type == "loopNode" else None,
            knowledge=self.knowledge,
        )

    async def run_node(self, node: NodeDef) -> _Outcome:
        # A loop waits for its body, whose nodes need the slots: it holds none itself.
        slot = self.semaphore if node.type != "loopNode" else contextlib.nullcontext()
        async with slot:
            return await self.run_node_in_slot(node)

    async def run_node_in_slot(self, node: NodeDef) -> _Outcome:
        counters = self.counters[node.id]
        outcome = _Outcome(node, "succeeded", _now(), time.monotonic())
        if node.condition:
            own = resolve_parameters(node.parameters, self.memory, lenient=True)
            extra = {**own, "_node": {"id": node.id, "type": node.type, "title": node.title}}
            try:
                holds = await self.check(node.condition, extra, self_id=node.id)
            except JsError as exc:
                outcome.status, outcome.error = "failed", f"its condition failed: {exc}"
                holds = False
            if not holds:
                if outcome.status != "failed":
                    outcome.status = "skipped"
                await self.finish_step(outcome)
                return outcome

        outputs: dict[str, Any] | None = None
        while True:
            ctx = self.context(node)
            self.running[node.id] = (outcome.started_at, outcome.started_mono, ctx)
            counters.status = "running"
            counters.execute_count += 1
            last_edge = counters.trigger_edge_ids[-1] if counters.trigger_edge_ids else "none"
            counters.execute_edge_ids.append(last_edge)
            if self.on_event is not None:
                await self.emit(NodeStarted(node_id=node.id, node_type=node.type, title=node.title))
            outputs = await self.attempts(ctx, outcome)
            outcome.inputs, outcome.meta = ctx.inputs, ctx.meta
            if counters.loop_count:
                outcome.meta["loopCount"] = counters.loop_count
            # The step's time is the node's own work, not the conditions checked below.
            outcome.finished_at, outcome.finished_mono = _now(), time.monotonic()
            if outputs is None:
                break
            outcome.outputs = outputs
            self.memory.set_outputs(node.id, outputs)
            if not node.loop_enable or await self.loop_stops(node, outputs, outcome):
                break
            try:
                self.count_iteration()
            except NodeFailed as exc:
                outcome.status, outcome.error = "failed", exc.message
                break
            counters.loop_count += 1
            del self.running[node.id]
            await self.finish_step(outcome)
            if node.loop_interval_ms:
                await asyncio.sleep(node.loop_interval_ms / 1000)
            outcome = _Outcome(node, "succeeded", _now(), time.monotonic())

        if outputs is not None and outcome.status == "succeeded":
            await self.check_loop_back(node, outputs, outcome)
        if outputs is not None and outcome.status == "succeeded" and outcome.loop_back is None:
            fired: set[str] = set()
            for edge in self.next_edges[node.id]:
                if edge.condition is None:
                    fired.add(edge.id)
                    continue
                extra = {
                    **outputs,
                    "_edge": {"id": edge.id, "source": edge.source, "target": edge.target},
                }
                try:
                    if await self.check(edge.condition, extra):
                        fired.add(edge.id)
                except JsError as exc:
                    outcome.status = "failed"
                    outcome.error = (
                        f'the condition on edge "{edge.id}" (to "{edge.target}") failed: {exc}'
                    )
                    break
            outcome.fired = frozenset(fired)
        del self.running[node.id]
        await self.finish_step(outcome)
        return outcome

    # -- scheduling ----------------------------------------------------------------------

    def launch(self, scope: _Scope, node_id: str) -> None:
        scope.ready.append(node_id)

    async def resolve_edge(self, scope: _Scope, edge: EdgeDef, fired: bool) -> None:
        target = edge.target
        scope.pending[target] -= 1
        if fired:
            scope.fired[target] += 1
            scope.fired_edges.add(edge.id)
            counters = self.counters[target]
            counters.trigger_count += 1
            counters.trigger_edge_ids.append(edge.id)
        if scope.pending[target] > 0:
            return
        if scope.fired[target]:
            self.launch(scope, target)
            return
        node = self.defn.nodes[target]
        await self.finish_step(_Outcome(node, "skipped", _now(), time.monotonic()))
        for next_edge in self.next_edges[target]:
            await self.resolve_edge(scope, next_edge, False)

    async def drive(self, scope: _Scope) -> _Outcome | None:
        """Run ``scope`` until nothing in it can run; the first failure, if any.

        A node that is the only one that can run (a chain's usual case) runs inline, in
        this task: a task of its own would only add a task, a wait and two turns of the
        event loop per node (a third of a template node's time). As soon as two can run,
        each gets its task and they run concurrently.
        """
        order = self.order
        while scope.ready or scope.tasks:
            if len(scope.ready) == 1 and not scope.tasks:
                node = self.defn.nodes[scope.ready.pop()]
                failure = await self.handle(scope, await self.run_node(node))
                if failure is not None:
                    return failure
                continue
            for node_id in scope.ready:
                task = asyncio.create_task(
                    self.run_node(self.defn.nodes[node_id]), name=f"workflow-node-{node_id}"
                )
                scope.tasks[task] = node_id
            scope.ready.clear()
            done, _ = await asyncio.wait(scope.tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in sorted(done, key=lambda t: order[scope.tasks[t]]):
                del scope.tasks[task]
                failure = await self.handle(scope, task.result())
                if failure is not None:
                    return failure
        return None

    async def handle(self, scope: _Scope, outcome: _Outcome) -> _Outcome | None:
        """Pass a finished node's outcome on to its edges; the outcome if it failed."""
        node = outcome.node
        if outcome.status == "failed":
            return outcome
        if outcome.status == "suspended":
            assert outcome.waiting is not None
            self.suspended[node.id] = outcome.waiting
            return None
        if outcome.status == "succeeded" and node.type == "endNode":
            self.end_outputs[node.id] = outcome.outputs
        if outcome.loop_back is not None:
            self.loop_back(scope, outcome.loop_back)
            return None
        for edge in self.next_edges[node.id]:
            await self.resolve_edge(scope, edge, edge.id in outcome.fired)
        return None

    async def cancel_tasks(self, scope: _Scope) -> None:
        scope.ready.clear()
        tasks = list(scope.tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        scope.tasks.clear()

    async def stop_running(self, status: StepStatus, error: str) -> list[str]:
        """Cancel every node task; record the ones that had started."""
        await self.cancel_tasks(self.main)
        stopped = [node_id for node_id in self.defn.order if node_id in self.running]
        for node_id in stopped:
            started_at, started_mono, ctx = self.running.pop(node_id)
            outcome = _Outcome(
                ctx.node,
                status,
                started_at,
                started_mono,
                inputs=ctx.inputs,
                meta=ctx.meta,
                error=error,
                attempts=1,
            )
            await self.finish_step(outcome)
        return stopped

    # -- suspension --------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {
            "version": SNAPSHOT_VERSION,
            "memory": to_jsonable(self.memory.values),
            "variableNames": sorted(self.memory.variable_names),
            "pending": dict(self.main.pending),
            "fired": dict(self.main.fired),
            "firedEdges": sorted(self.main.fired_edges),
            "suspended": to_jsonable(self.suspended),
            "counters": {node_id: c.as_json() for node_id, c in self.counters.items()},
            "endOutputs": to_jsonable(self.end_outputs),
            "iterations": self.iterations,
            "steps": [step.as_json() for step in self.steps],
            "startedAt": (self.started_at or _now()).isoformat(),
            "elapsedMs": self.elapsed_before_ms,
        }

    def restore(self, snapshot: Mapping[str, Any]) -> None:
        if snapshot.get("version") != SNAPSHOT_VERSION:
            raise InputError("this run cannot be resumed: its saved state is from another version")
        self.memory.values = dict(snapshot["memory"])
        self.memory.variable_names = frozenset(snapshot.get("variableNames") or ())
        for node_id in self.main.pending:
            self.main.pending[node_id] = int(snapshot["pending"].get(node_id, 0))
            self.main.fired[node_id] = int(snapshot["fired"].get(node_id, 0))
        self.main.fired_edges = set(snapshot.get("firedEdges") or ())
        for node_id, data in (snapshot.get("counters") or {}).items():
            if node_id in self.counters:
                self.counters[node_id] = NodeCounters.from_json(data)
        self.end_outputs = dict(snapshot.get("endOutputs") or {})
        self.iterations = int(snapshot.get("iterations") or 0)
        self.steps = [StepRecord.from_json(step) for step in snapshot.get("steps") or ()]
        self.started_at = datetime.fromisoformat(snapshot["startedAt"])
        self.elapsed_before_ms = int(snapshot.get("elapsedMs") or 0)

    # -- the run -------------------------------------------------------------------------

    async def run(self, resume: list[str] | None = None) -> RunResult:
        started_mono = time.monotonic()
        if self.started_at is None:
            self.started_at = _now()
        status: RunStatus = "succeeded"
        error: str | None = None
        failed_node_id: str | None = None
        result: dict[str, Any] | None = None
        limit = self.limits.run_timeout_s
        try:
            async with asyncio.timeout(limit) as deadline:
                if resume is None:
                    self.launch(self.main, self.defn.start_id)
                else:
                    for node_id in resume:
                        self.launch(self.main, node_id)
                self.failure = await self.drive(self.main)
        except TimeoutError:
            if not deadline.expired():
                raise
            stopped = await self.stop_running(
                "failed", f"stopped: the run took longer than {limit:g} s"
            )
            status, failed_node_id = "timeout", (stopped[0] if stopped else None)
            error = f"the run took longer than {limit:g} s"
            if stopped:
                labels = ", ".join(self.defn.nodes[n].label for n in stopped)
                error += f" (still running: {labels})"
        except BaseException:
            # Cancelled from outside (or a bug): take the node tasks down with us.
            await self.cancel_tasks(self.main)
            raise

        if status == "succeeded" and self.failure is not None:
            node = self.failure.node
            status, failed_node_id = "failed", node.id
            error = f"{node.label} failed: {self.failure.error}"
            await self.stop_running("skipped", f"cancelled because {node.label} failed")
        waiting_for: list[dict[str, Any]] | None = None
        snapshot: dict[str, Any] | None = None
        elapsed = self.elapsed_before_ms + round((time.monotonic() - started_mono) * 1000)
        if status == "succeeded" and self.suspended:
            status = "suspended"
            waiting_for = [self.suspended[n] for n in self.defn.order if n in self.suspended]
            labels = ", ".join(self.defn.nodes[w["nodeId"]].label for w in waiting_for)
            error = f"waiting for a person at {labels}"
            self.elapsed_before_ms = elapsed
            snapshot = self.snapshot()
        elif status == "succeeded":
            if self.end_outputs:
                result = {}
                for end_id in self.defn.end_ids:
                    result.update(self.end_outputs.get(end_id, {}))
                result = to_jsonable(result)
            else:
                status = "failed"
                ends = ", ".join(f'"{e}"' for e in self.defn.end_ids)
                error = (
                    f"no end node was reached: conditions skipped every path to the end "
                    f"node(s) {ends}"
                )
        finished_at = _now()
        await self.emit(
            RunFinished(status=status, result=result, error=error, waiting_for=waiting_for)
        )
        return RunResult(
            status=status,
            result=result,
            error=error,
            failed_node_id=failed_node_id,
            steps=self.steps,
            started_at=self.started_at,
            finished_at=finished_at,
            duration_ms=max(0, elapsed),
            waiting_for=waiting_for,
            snapshot=snapshot,
        )


async def run_workflow(
    defn: WorkflowDefinition,
    variables: Mapping[str, Any] | None,
    *,
    llm: LlmPort,
    limits: EngineLimits | None = None,
    on_event: EventCallback | None = None,
    run_id: str = "",
    knowledge: KnowledgePort | None = None,
) -> RunResult:
    """Run ``defn`` with the caller's ``variables`` and report how it went.

    Node failures, a run in which no end node is reached, and time-outs are reported in the
    returned :class:`RunResult` (``status`` ``failed``/``timeout``, ``error`` naming the node),
    never raised; so is a run that waits for a person (``suspended``). Invalid variables raise
    :class:`InputError` before anything runs (call :func:`validate_inputs` first to report them
    yourself). Cancelling the calling task cancels every node in flight and propagates
    ``CancelledError``. ``run_id`` is what scripts see as ``_chain.getStateInstanceId()``.
    """
    checked = validate_inputs(defn, variables)
    run = _Run(defn, checked, llm, limits or EngineLimits(), on_event, run_id, knowledge)
    return await run.run()


def resume_values(snapshot: Mapping[str, Any], values: Mapping[str, Any] | None) -> dict[str, Any]:
    """The values a person gave, checked against what the suspended run waits for.

    Each field may be given by its full name (``confirm__confirm1``) or its short name
    (``confirm``). Raises :class:`InputError` naming a missing or invalid field.
    """
    if values is None:
        values = {}
    if not isinstance(values, Mapping):
        raise InputError("values must be a JSON object")
    checked: dict[str, Any] = {}
    for waiting in (snapshot.get("suspended") or {}).values():
        for item in waiting.get("fields") or ():
            name, short = item["name"], item.get("shortName") or item["name"]
            value = values.get(name, values.get(short))
            if isinstance(value, str):
                value = value.strip()
            if is_blank(value):
                if item.get("required", True):
                    raise InputError(f'missing value "{short}" for {waiting["nodeId"]}', short)
                continue
            enums = item.get("enums")
            plain = enums and all(isinstance(e, str | int | float) for e in enums)
            if plain and str(value) not in {str(e) for e in enums}:
                allowed = ", ".join(str(e) for e in enums)
                raise InputError(f'invalid value for "{short}": must be one of {allowed}', short)
            try:
                value = coerce(value, parse_data_type(item.get("dataType")), strict=True)
            except CoercionError as exc:
                raise InputError(f'invalid value for "{short}": {exc}', short) from None
            checked[name] = value
    return checked


async def resume_workflow(
    defn: WorkflowDefinition,
    snapshot: Mapping[str, Any],
    values: Mapping[str, Any] | None,
    *,
    llm: LlmPort,
    limits: EngineLimits | None = None,
    on_event: EventCallback | None = None,
    run_id: str = "",
    knowledge: KnowledgePort | None = None,
) -> RunResult:
    """Continue a suspended run from its ``snapshot`` with the ``values`` a person gave.

    The waiting nodes run again with the values in the run's memory (Tinyflow's
    ``Chain.resume``); everything else continues as in :func:`run_workflow`. Values that do
    not fit raise :class:`InputError` before anything runs.
    """
    given = resume_values(snapshot, values)
    run = _Run(defn, {}, llm, limits or EngineLimits(), on_event, run_id, knowledge)
    run.restore(snapshot)
    run.memory.values.update(given)
    waiting = [node_id for node_id in defn.order if node_id in (snapshot.get("suspended") or {})]
    return await run.run(resume=waiting)
