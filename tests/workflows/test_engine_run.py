"""Running workflows: LLM nodes, branching, joins, concurrency, retries, failures, limits,
events and cancellation. The LLM is a small fake port; nothing here touches the network."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import pytest

from aiflowy.wire.workflow import event_body
from workflows.engine import EngineLimits, LlmAnswer, parse_definition, run_workflow

Handler = Callable[..., Awaitable[str]]


class FakeLlm:
    """Answers by ``llmId``: a fixed text, or whatever an async handler returns."""

    def __init__(self, answers: dict | None = None, *, tokens: list[str] | None = None) -> None:
        self.answers = answers or {}
        self.tokens = tokens
        self.calls: list[dict] = []

    async def chat(self, llm_id, messages, *, temperature, top_p, max_tokens, on_token):
        self.calls.append(
            {
                "llm_id": llm_id,
                "messages": messages,
                "temperature": temperature,
                "top_p": top_p,
                "max_tokens": max_tokens,
                "streaming": on_token is not None,
            }
        )
        answer = self.answers.get(llm_id, f"answer to {messages[-1]['content']}")
        if callable(answer):
            answer = await answer(messages)
        if on_token is not None:
            for token in self.tokens or [answer]:
                await on_token(token)
        return LlmAnswer(answer, prompt_tokens=5, completion_tokens=3, model="fake-model")


def node(node_id: str, node_type: str, **data) -> dict:
    return {"id": node_id, "type": node_type, "data": data}


def edge(source: str, target: str, condition: str | None = None) -> dict:
    result = {"id": f"{source}-{target}", "source": source, "target": target}
    if condition is not None:
        result["data"] = {"condition": condition}
    return result


def start(*names: str, **types: str) -> dict:
    parameters = [{"name": n, "refType": "input", "dataType": "String"} for n in names]
    parameters += [{"name": n, "refType": "input", "dataType": t} for n, t in types.items()]
    return node("start1", "startNode", title="开始", parameters=parameters)


def end(**refs: str) -> dict:
    return node(
        "end1", "endNode", title="结束", outputDefs=[{"name": k, "ref": v} for k, v in refs.items()]
    )


def llm(node_id: str, prompt: str = "hi", **data) -> dict:
    return node(node_id, "llmNode", title=data.pop("title", node_id), userPrompt=prompt, **data)


def flow(nodes: list[dict], edges: list[dict]):
    return parse_definition({"nodes": nodes, "edges": edges})


def guarded(coro, seconds: float = 10):
    """Fail instead of hanging if the engine deadlocks (not a timing assertion)."""
    return asyncio.wait_for(coro, seconds)


# ---------------------------------------------------------------------------------------------
# LLM node


@pytest.mark.asyncio
async def test_llm_node_sends_system_and_user_prompt_with_placeholders_filled():
    defn = flow(
        [
            start("topic"),
            llm(
                "llm1",
                "写一首关于{{topic}}的诗",
                systemPrompt="你是诗人，主题：{{ topic }}",
                llmId="7",
                parameters=[{"name": "topic", "ref": "start1.topic"}],
            ),
            end(poem="llm1.output"),
        ],
        [edge("start1", "llm1"), edge("llm1", "end1")],
    )
    port = FakeLlm({7: "春风"})
    result = await run_workflow(defn, {"topic": "春天"}, llm=port)
    assert result.status == "succeeded", result.error
    assert result.result == {"poem": "春风"}
    (call,) = port.calls
    assert call["llm_id"] == 7
    assert call["messages"] == [
        {"role": "system", "content": "你是诗人，主题：春天"},
        {"role": "user", "content": "写一首关于春天的诗"},
    ]
    assert (call["temperature"], call["top_p"]) == (0.5, 0.8)
    assert call["streaming"] is False
    llm_step = next(s for s in result.steps if s.node_id == "llm1")
    assert llm_step.meta["model"] == "fake-model"
    assert llm_step.meta["completionTokens"] == 3


@pytest.mark.asyncio
async def test_llm_node_without_system_prompt_sends_only_the_user_message():
    defn = flow(
        [start(), llm("llm1", "hello"), end(a="llm1.output")],
        [edge("start1", "llm1"), edge("llm1", "end1")],
    )
    port = FakeLlm()
    await run_workflow(defn, {}, llm=port)
    assert port.calls[0]["messages"] == [{"role": "user", "content": "hello"}]


@pytest.mark.asyncio
async def test_llm_json_output_is_parsed_and_reachable_by_path():
    defn = flow(
        [start(), llm("llm1", "json please", outType="json"), end(city="llm1.output.city")],
        [edge("start1", "llm1"), edge("llm1", "end1")],
    )
    port = FakeLlm({None: '```json\n{"city": "福州", "ok": true}\n```'})
    result = await run_workflow(defn, {}, llm=port)
    assert result.status == "succeeded", result.error
    assert result.result == {"city": "福州"}


@pytest.mark.asyncio
async def test_llm_json_output_that_does_not_parse_fails_the_node():
    defn = flow(
        [start(), llm("llm1", "json please", outType="json", title="结构化"), end(a="llm1.output")],
        [edge("start1", "llm1"), edge("llm1", "end1")],
    )
    result = await run_workflow(defn, {}, llm=FakeLlm({None: "sorry, no JSON today"}))
    assert result.status == "failed"
    assert result.error.startswith('node "llm1" (结构化) failed: the model\'s answer is not valid')
    assert result.result is None


# ---------------------------------------------------------------------------------------------
# Branching, joins, concurrency


@pytest.mark.asyncio
async def test_edge_conditions_skip_a_branch_and_the_join_runs_once():
    defn = flow(
        [
            start(score="Number"),
            llm("pass", "pass", llmId="pass"),
            llm("fail", "fail", llmId="fail"),
            llm("join", "join", llmId="join"),
            end(verdict="pass.output", other="fail.output", joined="join.output"),
        ],
        [
            edge("start1", "pass", "score >= 60"),
            edge("start1", "fail", "start1.score < 60"),
            edge("pass", "join"),
            edge("fail", "join"),
            edge("join", "end1"),
        ],
    )
    port = FakeLlm({"pass": "及格", "fail": "不及格", "join": "done"})
    result = await run_workflow(defn, {"score": "75"}, llm=port)
    assert result.status == "succeeded", result.error
    assert result.result == {"verdict": "及格", "other": None, "joined": "done"}
    assert [c["llm_id"] for c in port.calls].count("join") == 1
    statuses = {s.node_id: s.status for s in result.steps}
    assert statuses == {
        "start1": "succeeded",
        "pass": "succeeded",
        "fail": "skipped",
        "join": "succeeded",
        "end1": "succeeded",
    }


@pytest.mark.asyncio
async def test_a_node_whose_incoming_edges_are_all_skipped_is_skipped_and_passes_it_on():
    defn = flow(
        [start(), llm("a", "a"), llm("b", "b"), llm("c", "c"), end(c="c.output")],
        [
            edge("start1", "a", "false"),
            edge("a", "b"),
            edge("b", "end1"),
            edge("start1", "c"),
            edge("c", "end1"),
        ],
    )
    port = FakeLlm()
    result = await run_workflow(defn, {}, llm=port)
    assert result.status == "succeeded", result.error
    assert {s.node_id: s.status for s in result.steps}["b"] == "skipped"
    assert len(port.calls) == 1


@pytest.mark.asyncio
async def test_conditions_see_flat_keys_nested_objects_bare_names_and_source_outputs():
    checks = " && ".join(
        [
            "globalThis['start1.city'] === '福州'",
            "_memory['start1.city'] === '福州'",
            "start1.city === '福州'",
            "city === '福州'",
            "output === 'ok'",
            "llm1.output === 'ok'",
            "_edge.source === 'llm1'",
        ]
    )
    defn = flow(
        [start("city"), llm("llm1"), end(a="llm1.output")],
        [edge("start1", "llm1"), edge("llm1", "end1", checks)],
    )
    result = await run_workflow(defn, {"city": "福州"}, llm=FakeLlm({None: "ok"}))
    assert result.status == "succeeded", result.error


@pytest.mark.asyncio
async def test_node_condition_skips_the_node():
    defn = flow(
        [
            start(mode="String"),
            llm("llm1", condition="mode === 'long'"),
            llm("llm2"),
            end(a="llm1.output", b="llm2.output"),
        ],
        [
            edge("start1", "llm1"),
            edge("start1", "llm2"),
            edge("llm1", "end1"),
            edge("llm2", "end1"),
        ],
    )
    port = FakeLlm({None: "text"})
    result = await run_workflow(defn, {"mode": "short"}, llm=port)
    assert result.status == "succeeded", result.error
    assert result.result == {"a": None, "b": "text"}
    assert {s.node_id: s.status for s in result.steps}["llm1"] == "skipped"


@pytest.mark.asyncio
async def test_a_broken_edge_condition_fails_the_run_naming_the_node_and_edge():
    defn = flow(
        [start(), llm("llm1", title="问答"), end(a="llm1.output")],
        [edge("start1", "llm1"), edge("llm1", "end1", "undefinedThing > 1")],
    )
    result = await run_workflow(defn, {}, llm=FakeLlm())
    assert result.status == "failed"
    assert result.failed_node_id == "llm1"
    assert 'node "llm1" (问答) failed: the condition on edge "llm1-end1"' in result.error
    assert "ReferenceError" in result.error


@pytest.mark.asyncio
async def test_when_conditions_skip_every_end_node_the_run_fails_clearly():
    defn = flow(
        [start(), llm("llm1"), end(a="llm1.output")],
        [edge("start1", "llm1"), edge("llm1", "end1", "1 > 2")],
    )
    result = await run_workflow(defn, {}, llm=FakeLlm())
    assert result.status == "failed"
    assert "no end node was reached" in result.error
    assert result.result is None


@pytest.mark.asyncio
async def test_independent_branches_run_concurrently():
    # Each branch waits for the other to have started: run one after the other, this would
    # deadlock (guarded so the test fails instead of hanging).
    left_started, right_started = asyncio.Event(), asyncio.Event()

    async def left(messages):
        left_started.set()
        await right_started.wait()
        return "left"

    async def right(messages):
        right_started.set()
        await left_started.wait()
        return "right"

    defn = flow(
        [start(), llm("l", llmId="l"), llm("r", llmId="r"), end(l="l.output", r="r.output")],
        [edge("start1", "l"), edge("start1", "r"), edge("l", "end1"), edge("r", "end1")],
    )
    result = await guarded(run_workflow(defn, {}, llm=FakeLlm({"l": left, "r": right})))
    assert result.status == "succeeded", result.error
    assert result.result == {"l": "left", "r": "right"}


@pytest.mark.asyncio
async def test_max_parallel_nodes_caps_concurrency():
    state = {"now": 0, "peak": 0}

    async def busy(messages):
        state["now"] += 1
        state["peak"] = max(state["peak"], state["now"])
        for _ in range(5):
            await asyncio.sleep(0)
        state["now"] -= 1
        return "done"

    branches = ["a", "b", "c"]
    defn = flow(
        [start(), *(llm(b) for b in branches), end(**{b: f"{b}.output" for b in branches})],
        [edge("start1", b) for b in branches] + [edge(b, "end1") for b in branches],
    )
    result = await run_workflow(
        defn, {}, llm=FakeLlm({None: busy}), limits=EngineLimits(max_parallel_nodes=1)
    )
    assert result.status == "succeeded", result.error
    assert state["peak"] == 1


@pytest.mark.asyncio
async def test_outputs_of_every_end_node_that_ran_are_merged():
    defn = flow(
        [
            start(),
            llm("a", llmId="a"),
            llm("b", llmId="b"),
            end(x="a.output"),
            node("end2", "endNode", outputDefs=[{"name": "y", "ref": "b.output"}]),
        ],
        [edge("start1", "a"), edge("start1", "b"), edge("a", "end1"), edge("b", "end2")],
    )
    result = await run_workflow(defn, {}, llm=FakeLlm({"a": "A", "b": "B"}))
    assert result.status == "succeeded", result.error
    assert result.result == {"x": "A", "y": "B"}


# ---------------------------------------------------------------------------------------------
# Retries, failures, limits


def _flaky(failures: int, message: str = "upstream overloaded"):
    calls = {"n": 0}

    async def answer(messages):
        calls["n"] += 1
        if calls["n"] <= failures:
            raise RuntimeError(message)
        return "finally"

    return answer, calls


@pytest.mark.asyncio
async def test_retry_enabled_node_succeeds_after_transient_failures():
    answer, calls = _flaky(2)
    defn = flow(
        [
            start(),
            llm("llm1", retryEnable=True, maxRetryCount=2, retryIntervalMs=0),
            end(a="llm1.output"),
        ],
        [edge("start1", "llm1"), edge("llm1", "end1")],
    )
    result = await run_workflow(defn, {}, llm=FakeLlm({None: answer}))
    assert result.status == "succeeded", result.error
    assert calls["n"] == 3
    step = next(s for s in result.steps if s.node_id == "llm1")
    assert step.attempts == 3


@pytest.mark.asyncio
async def test_retries_are_bounded_and_the_error_keeps_the_port_message():
    answer, calls = _flaky(10)
    defn = flow(
        [
            start(),
            llm("llm1", title="写作", retryEnable=True, maxRetryCount="1", retryIntervalMs="0"),
            end(a="llm1.output"),
        ],
        [edge("start1", "llm1"), edge("llm1", "end1")],
    )
    result = await run_workflow(defn, {}, llm=FakeLlm({None: answer}))
    assert calls["n"] == 2
    assert result.status == "failed"
    assert result.error == 'node "llm1" (写作) failed: upstream overloaded (after 2 attempts)'


@pytest.mark.asyncio
async def test_without_retry_enabled_a_node_runs_once():
    answer, calls = _flaky(1)
    defn = flow(
        [start(), llm("llm1"), end(a="llm1.output")], [edge("start1", "llm1"), edge("llm1", "end1")]
    )
    result = await run_workflow(defn, {}, llm=FakeLlm({None: answer}))
    assert calls["n"] == 1
    assert result.status == "failed"


@pytest.mark.asyncio
async def test_a_failing_node_cancels_running_siblings_and_names_itself():
    sibling_cancelled = asyncio.Event()

    async def hang(messages):
        try:
            await asyncio.Event().wait()
        finally:
            sibling_cancelled.set()

    async def boom(messages):
        await asyncio.sleep(0)
        raise RuntimeError("quota exceeded")

    defn = flow(
        [
            start(),
            llm("slow", llmId="slow", title="慢"),
            llm("bad", llmId="bad", title="坏"),
            end(a="slow.output", b="bad.output"),
        ],
        [edge("start1", "slow"), edge("start1", "bad"), edge("slow", "end1"), edge("bad", "end1")],
    )
    result = await guarded(run_workflow(defn, {}, llm=FakeLlm({"slow": hang, "bad": boom})))
    assert result.status == "failed"
    assert result.failed_node_id == "bad"
    assert result.error == 'node "bad" (坏) failed: quota exceeded'
    assert result.result is None
    assert sibling_cancelled.is_set()
    steps = {s.node_id: s for s in result.steps}
    assert steps["bad"].status == "failed"
    assert steps["slow"].status == "skipped"
    assert "cancelled" in steps["slow"].error
    assert "end1" not in steps


@pytest.mark.asyncio
async def test_node_timeout_fails_the_node():
    async def hang(messages):
        await asyncio.Event().wait()

    defn = flow(
        [start(), llm("llm1"), end(a="llm1.output")], [edge("start1", "llm1"), edge("llm1", "end1")]
    )
    result = await guarded(
        run_workflow(defn, {}, llm=FakeLlm({None: hang}), limits=EngineLimits(node_timeout_s=0.05))
    )
    assert result.status == "failed"
    assert result.error == 'node "llm1" failed: timed out after 0.05 s'


@pytest.mark.asyncio
async def test_run_timeout_stops_the_run_and_reports_the_running_node():
    async def hang(messages):
        await asyncio.Event().wait()

    defn = flow(
        [start(), llm("llm1", title="思考"), end(a="llm1.output")],
        [edge("start1", "llm1"), edge("llm1", "end1")],
    )
    events: list[dict] = []

    async def listen(event):
        events.append(event_body(event))  # as the workflow wire renders it

    result = await guarded(
        run_workflow(
            defn,
            {},
            llm=FakeLlm({None: hang}),
            limits=EngineLimits(run_timeout_s=0.1),
            on_event=listen,
        )
    )
    assert result.status == "timeout"
    assert result.result is None
    assert result.failed_node_id == "llm1"
    assert 'still running: node "llm1" (思考)' in result.error
    assert events[-1] == {
        "event": "runFinished",
        "runId": "",
        "status": "timeout",
        "result": None,
        "error": result.error,
    }


@pytest.mark.asyncio
async def test_cancelling_the_run_cancels_nodes_in_flight():
    entered, cancelled = asyncio.Event(), asyncio.Event()

    async def hang(messages):
        entered.set()
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    defn = flow(
        [start(), llm("llm1"), end(a="llm1.output")], [edge("start1", "llm1"), edge("llm1", "end1")]
    )
    task = asyncio.create_task(run_workflow(defn, {}, llm=FakeLlm({None: hang})))
    await guarded(entered.wait())
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cancelled.is_set()


# ---------------------------------------------------------------------------------------------
# Events and records


@pytest.mark.asyncio
async def test_a_streamed_run_emits_events_in_order():
    defn = flow(
        [
            start("q"),
            llm("llm1", "{{q}}", parameters=[{"name": "q", "ref": "start1.q"}]),
            end(answer="llm1.output"),
        ],
        [edge("start1", "llm1"), edge("llm1", "end1")],
    )
    events: list[dict] = []

    async def listen(event):
        events.append(event_body(event))  # as the workflow wire renders it

    port = FakeLlm({None: "你好呀"}, tokens=["你", "好", "呀"])
    result = await run_workflow(defn, {"q": "hi"}, llm=port, on_event=listen)
    assert result.status == "succeeded"
    assert port.calls[0]["streaming"] is True
    json.dumps(events)  # every event is JSON-serialisable
    summary = [(e["event"], e.get("nodeId"), e.get("delta")) for e in events]
    assert summary == [
        ("nodeStarted", "start1", None),
        ("nodeFinished", "start1", None),
        ("nodeStarted", "llm1", None),
        ("llmToken", "llm1", "你"),
        ("llmToken", "llm1", "好"),
        ("llmToken", "llm1", "呀"),
        ("nodeFinished", "llm1", None),
        ("nodeStarted", "end1", None),
        ("nodeFinished", "end1", None),
        ("runFinished", None, None),
    ]
    finished = events[6]
    assert finished["status"] == "succeeded"
    assert finished["outputs"] == {"output": "你好呀"}
    assert finished["nodeType"] == "llmNode"
    assert isinstance(finished["durationMs"], int)
    assert events[-1] == {
        "event": "runFinished",
        "runId": "",
        "status": "succeeded",
        "result": {"answer": "你好呀"},
        "error": None,
    }


@pytest.mark.asyncio
async def test_steps_record_inputs_outputs_and_times():
    defn = flow(
        [
            start("q"),
            llm("llm1", "{{q}}", parameters=[{"name": "q", "ref": "start1.q"}]),
            end(answer="llm1.output"),
        ],
        [edge("start1", "llm1"), edge("llm1", "end1")],
    )
    result = await run_workflow(defn, {"q": "hi"}, llm=FakeLlm({None: "yo"}))
    step = next(s for s in result.steps if s.node_id == "llm1")
    assert (step.node_type, step.title, step.status) == ("llmNode", "llm1", "succeeded")
    assert step.inputs == {"q": "hi"}
    assert step.outputs == {"output": "yo"}
    assert step.error is None and step.attempts == 1
    assert step.started_at.tzinfo is not None
    assert step.finished_at >= step.started_at
    assert isinstance(step.duration_ms, int)
    assert [s.node_id for s in result.steps] == ["start1", "llm1", "end1"]


@pytest.mark.asyncio
async def test_a_failing_event_listener_does_not_break_the_run():
    async def listen(event):
        raise ConnectionError("client went away")

    defn = flow(
        [start(), llm("llm1"), end(a="llm1.output")], [edge("start1", "llm1"), edge("llm1", "end1")]
    )
    result = await run_workflow(defn, {}, llm=FakeLlm({None: "x"}), on_event=listen)
    assert result.status == "succeeded"
