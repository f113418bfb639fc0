"""Tinyflow's ``_state`` and ``_chain`` for scripts: a read-only stand-in built from JSON.

Tinyflow hands its Java objects to JavaScript: a code node and a node condition see ``_state``
(that node's ``NodeState``) and ``_chain`` (the ``Chain``); edge conditions see ``_chain``.
Documented idioms call a handful of their methods — ``_state.isUpstreamFullyExecuted()`` to
join branches, ``_state.getExecuteCount()``/``getLoopCount()`` to stop a loop,
``_chain.getState().getMemory()`` and ``_chain.getNodeState(id)`` to read results. We never
expose Python objects to the sandbox, so the runner passes the data as one JSON global and a
one-line JavaScript prelude (no newline: error line numbers of the user's script stay right)
rebuilds frozen objects with those methods. Changing them changes nothing in the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

STATE_GLOBAL = "__tinyflow_state"

# One line on purpose (see the module docstring).
_PRELUDE = (
    "(function(d){"
    "const F=Object.freeze,copy=(v)=>v===undefined?v:JSON.parse(JSON.stringify(v));"
    "const mem=(m)=>{const o=copy(m||{});"
    "Object.defineProperty(o,'get',{value:(k)=>o[k]});"
    "Object.defineProperty(o,'containsKey',{value:(k)=>Object.prototype.hasOwnProperty.call(o,k)});"
    "return F(o);};"
    "const node=(id)=>{const s=d.nodes[id]||{nodeId:id};return F({"
    "getNodeId:()=>s.nodeId,getStatus:()=>s.status||null,"
    "getExecuteCount:()=>s.executeCount||0,getTriggerCount:()=>s.triggerCount||0,"
    "getLoopCount:()=>s.loopCount||0,getRetryCount:()=>s.retryCount||0,"
    "getTriggerEdgeIds:()=>copy(s.triggerEdgeIds||[]),"
    "getExecuteEdgeIds:()=>copy(s.executeEdgeIds||[]),"
    "getLastExecuteEdgeId:()=>{const e=s.executeEdgeIds||[];return e.length?e[e.length-1]:null;},"
    "isUpstreamFullyExecuted:()=>s.upstreamFullyExecuted!==false,"
    "getMemory:()=>mem(s.memory)});};"
    "const chainState=F({getMemory:()=>mem(d.memory),getStatus:()=>d.status,"
    "getInstanceId:()=>d.runId,"
    "resolveValue:(k)=>{const m=d.memory||{};return m[k]===undefined?null:copy(m[k]);}});"
    "const opts={enumerable:true,writable:false,configurable:true};"
    "Object.defineProperty(globalThis,'_chain',{...opts,value:F({getState:()=>chainState,"
    "getNodeState:(id)=>node(id),getStateInstanceId:()=>d.runId})});"
    "if(d.self!==null){Object.defineProperty(globalThis,'_state',{...opts,value:node(d.self)});}"
    f"}})(globalThis.{STATE_GLOBAL});delete globalThis.{STATE_GLOBAL};"
)
assert "\n" not in _PRELUDE


@dataclass(slots=True)
class NodeCounters:
    """What Tinyflow's ``NodeState`` counts for one node during a run."""

    status: str = "pending"
    trigger_count: int = 0
    execute_count: int = 0
    loop_count: int = 0
    retry_count: int = 0
    trigger_edge_ids: list[str] = field(default_factory=list)
    execute_edge_ids: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "triggerCount": self.trigger_count,
            "executeCount": self.execute_count,
            "loopCount": self.loop_count,
            "retryCount": self.retry_count,
            "triggerEdgeIds": list(self.trigger_edge_ids),
            "executeEdgeIds": list(self.execute_edge_ids),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NodeCounters:
        return cls(
            status=str(data.get("status") or "pending"),
            trigger_count=int(data.get("triggerCount") or 0),
            execute_count=int(data.get("executeCount") or 0),
            loop_count=int(data.get("loopCount") or 0),
            retry_count=int(data.get("retryCount") or 0),
            trigger_edge_ids=[str(e) for e in data.get("triggerEdgeIds") or []],
            execute_edge_ids=[str(e) for e in data.get("executeEdgeIds") or []],
        )


def mentions_state(text: str) -> bool:
    return "_state" in text or "_chain" in text


def script_state(
    text: str,
    *,
    self_id: str | None,
    counters: dict[str, NodeCounters],
    incoming: dict[str, tuple[str, ...]],
    memory: dict[str, Any],
    run_id: str,
) -> tuple[str, dict[str, Any]]:
    """(prelude, globals) that define ``_state`` (for ``self_id``) and ``_chain`` in a script;
    nothing when ``text`` uses neither (keeps big values out of every script)."""
    if not mentions_state(text):
        return "", {}
    wants_memory = "Memory" in text or "resolveValue" in text
    nodes: dict[str, Any] = {}
    for node_id, counter in counters.items():
        data = counter.as_json()
        data["nodeId"] = node_id
        expected = incoming.get(node_id, ())
        data["upstreamFullyExecuted"] = all(e in counter.trigger_edge_ids for e in expected)
        nodes[node_id] = data
    payload = {
        "self": self_id,
        "nodes": nodes,
        "memory": memory if wants_memory else {},
        "status": "RUNNING",
        "runId": run_id,
    }
    return _PRELUDE, {STATE_GLOBAL: payload}
