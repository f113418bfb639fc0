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
* ``loopEnable``/``maxLoopCount``/``loopBreakCondition`` are ignored for now: no AIFlowy
  example relies on them and a loop over a single node is better expressed in a code node.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from aiflowy.events import NodeFinished, NodeStarted, RunEvent, RunFinished
from aiflowy.outbound import OutboundError

from .definition import EdgeDef, NodeDef, WorkflowDefinition
from .errors import NodeFailed
from .inputs import validate_inputs
from .js import JsError, eval_condition
from .nodes import NodeContext, execute_node, resolve_parameters
from .ports import EngineLimits, KnowledgePort, LlmPort
from .values import RunMemory, to_jsonable

logger = logging.getLogger(__name__)

EventCallback = Callable[[RunEvent], Awaitable[None]]
StepStatus = Literal["succeeded", "failed", "skipped"]
RunStatus = Literal["succeeded", "failed", "timeout"]


@dataclass
class StepRecord:
    """What one node did in a run (JSON-safe ``inputs``/``outputs``; times in UTC).

    ``meta`` carries extras for run history: the rendered prompts, model and token counts of
    an LLM node; method, URL, (masked) headers and status of an HTTP node.
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


@dataclass
class RunResult:
    """The outcome of :func:`run_workflow`; ``result`` is set only when it succeeded."""

    status: RunStatus
    result: dict[str, Any] | None
    error: str | None
    failed_node_id: str | None
    steps: list[StepRecord]
    started_at: datetime
    finished_at: datetime
    duration_ms: int


def _now() -> datetime:
    return datetime.now(UTC)


def _describe_exception(exc: BaseException) -> str:
    if isinstance(exc, NodeFailed | JsError | OutboundError):
        return exc.message
    text = str(exc).strip()
    return text or type(exc).__name__


@dataclass
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


class _Run:
    def __init__(
        self,
        defn: WorkflowDefinition,
        variables: Mapping[str, Any],
        llm: LlmPort,
        limits: EngineLimits,
        on_event: EventCallback | None,
        knowledge: KnowledgePort | None = None,
    ) -> None:
        self.defn = defn
        self.llm = llm
        self.knowledge = knowledge
        self.limits = limits
        self.on_event = on_event
        self.memory = RunMemory(variables)
        self.steps: list[StepRecord] = []
        self.tasks: dict[asyncio.Task[_Outcome], str] = {}
        self.running: dict[str, tuple[datetime, float, NodeContext]] = {}
        self.semaphore = asyncio.Semaphore(max(1, limits.max_parallel_nodes))
        self.pending: dict[str, int] = {}
        self.fired: dict[str, int] = {}
        self.end_outputs: dict[str, dict[str, Any]] = {}
        self.failure: _Outcome | None = None
        for node_id in defn.nodes:
            sources = [e for e in defn.incoming[node_id] if e.source in defn.reachable]
            self.pending[node_id] = len(sources)
            self.fired[node_id] = 0

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
            meta=to_jsonable(outcome.meta),
        )
        self.steps.append(step)
        return step

    async def finish_step(self, outcome: _Outcome) -> None:
        step = self.record(outcome)
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

    # -- conditions ----------------------------------------------------------------------

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

    async def check(self, expression: str, extra: Mapping[str, Any]) -> bool:
        return await eval_condition(
            expression,
            self.condition_globals(expression, extra),
            timeout_ms=self.limits.js_timeout_ms,
            memory_mb=self.limits.js_memory_mb,
        )

    # -- one node ------------------------------------------------------------------------

    async def attempt(self, ctx: NodeContext) -> dict[str, Any]:
        limit = self.limits.node_timeout_s
        try:
            async with asyncio.timeout(limit) as deadline:
                return await execute_node(ctx)
        except TimeoutError:
            if deadline.expired():
                raise NodeFailed(f"timed out after {limit:g} s") from None
            raise

    async def run_node(self, node: NodeDef) -> _Outcome:
        async with self.semaphore:
            outcome = _Outcome(node, "succeeded", _now(), time.monotonic())
            if node.condition:
                own = resolve_parameters(node.parameters, self.memory, lenient=True)
                extra = {**own, "_node": {"id": node.id, "type": node.type, "title": node.title}}
                try:
                    holds = await self.check(node.condition, extra)
                except JsError as exc:
                    outcome.status, outcome.error = "failed", f"its condition failed: {exc}"
                    holds = False
                if not holds:
                    if outcome.status != "failed":
                        outcome.status = "skipped"
                    await self.finish_step(outcome)
                    return outcome

            ctx = NodeContext(
                node,
                self.memory,
                self.limits,
                self.llm,
                self.emit if self.on_event is not None else None,
                knowledge=self.knowledge,
            )
            self.running[node.id] = (outcome.started_at, outcome.started_mono, ctx)
            await self.emit(NodeStarted(node_id=node.id, node_type=node.type, title=node.title))
            attempts = 1 + (node.max_retry_count if node.retry_enable else 0)
            outputs: dict[str, Any] | None = None
            while outputs is None:
                outcome.attempts += 1
                ctx.inputs, ctx.meta = {}, {}
                try:
                    outputs = await self.attempt(ctx)
                except Exception as exc:
                    error = _describe_exception(exc)
                    if not isinstance(exc, NodeFailed | JsError | OutboundError):
                        logger.info("node %s raised %r", node.id, exc, exc_info=True)
                    if outcome.attempts >= attempts:
                        if outcome.attempts > 1:
                            error = f"{error} (after {outcome.attempts} attempts)"
                        outcome.status, outcome.error = "failed", error
                        break
                    await asyncio.sleep(node.retry_interval_ms / 1000)
            outcome.inputs, outcome.meta = ctx.inputs, ctx.meta
            # The step's time is the node's own work, not the edge conditions checked below.
            outcome.finished_at, outcome.finished_mono = _now(), time.monotonic()

            if outputs is not None:
                outcome.outputs = outputs
                self.memory.set_outputs(node.id, outputs)
                fired: set[str] = set()
                for edge in self.defn.outgoing[node.id]:
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

    def launch(self, node_id: str) -> None:
        node = self.defn.nodes[node_id]
        task = asyncio.create_task(self.run_node(node), name=f"workflow-node-{node_id}")
        self.tasks[task] = node_id

    async def resolve_edge(self, edge: EdgeDef, fired: bool) -> None:
        target = edge.target
        self.pending[target] -= 1
        if fired:
            self.fired[target] += 1
        if self.pending[target] > 0:
            return
        if self.fired[target]:
            self.launch(target)
            return
        node = self.defn.nodes[target]
        await self.finish_step(_Outcome(node, "skipped", _now(), time.monotonic()))
        for next_edge in self.defn.outgoing[target]:
            await self.resolve_edge(next_edge, False)

    async def schedule(self) -> None:
        order = {node_id: index for index, node_id in enumerate(self.defn.order)}
        self.launch(self.defn.start_id)
        while self.tasks:
            done, _ = await asyncio.wait(self.tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in sorted(done, key=lambda t: order[self.tasks[t]]):
                del self.tasks[task]
                outcome = task.result()
                node = outcome.node
                if outcome.status == "failed":
                    self.failure = outcome
                    return
                if outcome.status == "succeeded" and node.type == "endNode":
                    self.end_outputs[node.id] = outcome.outputs
                for edge in self.defn.outgoing[node.id]:
                    await self.resolve_edge(edge, edge.id in outcome.fired)

    async def stop_running(self, status: StepStatus, error: str) -> list[str]:
        """Cancel every node task; record the ones that had started."""
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self.tasks.clear()
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

    async def run(self) -> RunResult:
        started_at, started_mono = _now(), time.monotonic()
        status: RunStatus = "succeeded"
        error: str | None = None
        failed_node_id: str | None = None
        result: dict[str, Any] | None = None
        limit = self.limits.run_timeout_s
        try:
            async with asyncio.timeout(limit) as deadline:
                await self.schedule()
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
            for task in self.tasks:
                task.cancel()
            if self.tasks:
                await asyncio.gather(*self.tasks, return_exceptions=True)
            raise

        if status == "succeeded" and self.failure is not None:
            node = self.failure.node
            status, failed_node_id = "failed", node.id
            error = f"{node.label} failed: {self.failure.error}"
            await self.stop_running("skipped", f"cancelled because {node.label} failed")
        if status == "succeeded":
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
        await self.emit(RunFinished(status=status, result=result, error=error))
        return RunResult(
            status=status,
            result=result,
            error=error,
            failed_node_id=failed_node_id,
            steps=self.steps,
            started_at=started_at,
            finished_at=finished_at,
            duration_ms=max(0, round((time.monotonic() - started_mono) * 1000)),
        )


async def run_workflow(
    defn: WorkflowDefinition,
    variables: Mapping[str, Any] | None,
    *,
    llm: LlmPort,
    limits: EngineLimits | None = None,
    on_event: EventCallback | None = None,
    knowledge: KnowledgePort | None = None,
) -> RunResult:
    """Run ``defn`` with the caller's ``variables`` and report how it went.

    Node failures, a run in which no end node is reached, and time-outs are reported in the
    returned :class:`RunResult` (``status`` ``failed``/``timeout``, ``error`` naming the node),
    never raised. Invalid variables raise :class:`InputError` before anything runs (call
    :func:`validate_inputs` first to report them yourself). Cancelling the calling task
    cancels every node in flight and propagates ``CancelledError``.
    """
    checked = validate_inputs(defn, variables)
    run = _Run(defn, checked, llm, limits or EngineLimits(), on_event, knowledge)
    return await run.run()
