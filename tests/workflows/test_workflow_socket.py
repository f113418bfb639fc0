"""ws/v1/workflow/events: start a run or subscribe to one by id and receive its node events
live from the process that runs it (channel-layer groups), with the same key rules as HTTP.
Through the real ASGI app; in PostgreSQL + Redis mode the runs go to a job worker process
(`manage.py runjobs`) and the events come back over Redis."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from config.asgi import application
from workflows.models import WorkflowRun

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


def slow_echo() -> dict:
    """start → tick (a node loop: 4 runs, 150 ms apart) → end: long enough to subscribe to."""
    return {
        "nodes": [
            {
                "id": "start",
                "type": "startNode",
                "data": {"parameters": [{"name": "text", "refType": "input"}]},
            },
            {
                "id": "tick",
                "type": "templateNode",
                "data": {
                    "template": "#(text)!",
                    "parameters": [{"name": "text", "ref": "start.text"}],
                    "loopEnable": True,
                    "maxLoopCount": 3,
                    "loopIntervalMs": 150,
                },
            },
            {
                "id": "end",
                "type": "endNode",
                "data": {"outputDefs": [{"name": "echo", "ref": "tick.output"}]},
            },
        ],
        "edges": [
            {"id": "e1", "source": "start", "target": "tick"},
            {"id": "e2", "source": "tick", "target": "end"},
        ],
    }


async def connect(key: str) -> WebsocketCommunicator:
    socket = WebsocketCommunicator(application, f"/ws/v1/workflow/events?api_key={key}")
    connected, _ = await socket.connect()
    assert connected
    return socket


async def frames_until_finished(socket: WebsocketCommunicator) -> list[dict]:
    frames = []
    while True:
        frame = await socket.receive_json_from(timeout=20)
        frames.append(frame)
        if frame["event"] in ("runFinished", "error"):
            return frames


async def test_a_socket_starts_a_run_and_receives_its_events(
    make_workflow, make_key, workflow_worker
):
    workflow = await database_sync_to_async(make_workflow)(slow_echo())
    key = await database_sync_to_async(make_key)(workflow_ids=[workflow.id])
    socket = await connect(key)
    await socket.send_json_to(
        {"action": "run", "id": workflow.id, "variables": {"text": "hi"}, "requestId": "r1"}
    )
    frames = await frames_until_finished(socket)
    await socket.disconnect()
    assert frames[0]["event"] == "runAccepted"
    run_id = frames[0]["runId"]
    assert {f["requestId"] for f in frames} == {"r1"}
    names = [(f["event"], f.get("nodeId")) for f in frames[1:]]
    assert names.count(("nodeFinished", "tick")) == 4
    assert names[-1] == ("runFinished", None)
    assert frames[-1] == {
        "event": "runFinished",
        "runId": run_id,
        "status": "succeeded",
        "result": {"echo": "hi!"},
        "error": None,
        "requestId": "r1",
    }
    run = await database_sync_to_async(WorkflowRun.objects.get)(run_id=run_id)
    assert run.status == "succeeded"
    assert run.source == "socket"


async def test_a_second_socket_subscribes_to_a_running_run_by_id(
    make_workflow, make_key, workflow_worker
):
    workflow = await database_sync_to_async(make_workflow)(slow_echo())
    key = await database_sync_to_async(make_key)(workflow_ids=[workflow.id])
    starter = await connect(key)
    await starter.send_json_to({"action": "run", "id": workflow.id, "variables": {"text": "x"}})
    run_id = (await starter.receive_json_from(timeout=20))["runId"]

    watcher = await connect(key)
    await watcher.send_json_to({"action": "subscribe", "runId": run_id, "requestId": "w"})
    frames = await frames_until_finished(watcher)
    assert frames[0]["event"] in ("subscribed", "nodeStarted", "nodeFinished", "runFinished")
    assert frames[-1]["event"] == "runFinished"
    assert frames[-1]["result"] == {"echo": "x!"}
    assert {f.get("requestId") for f in frames} == {"w"}

    # Once at rest, a subscription is answered with the run's outcome at once.
    await watcher.send_json_to({"action": "subscribe", "runId": run_id})
    assert (await watcher.receive_json_from(timeout=10))["status"] == "succeeded"
    await starter.disconnect()
    await watcher.disconnect()


async def test_another_keys_run_does_not_exist_for_a_socket(make_workflow, make_key):
    workflow = await database_sync_to_async(make_workflow)(slow_echo())
    other = await database_sync_to_async(make_key)(workflow_ids=[workflow.id])
    # A run started with no key (or another key): not this key's.
    run = await database_sync_to_async(WorkflowRun.objects.create)(
        workflow=workflow, source="api", status="succeeded", result={}
    )
    socket = await connect(other)
    await socket.send_json_to({"action": "subscribe", "runId": str(run.run_id), "requestId": 7})
    frame = await socket.receive_json_from(timeout=10)
    assert frame["event"] == "error"
    assert frame["errorCode"] == 404
    assert frame["requestId"] == 7
    await socket.send_json_to({"action": "dance"})
    frame = await socket.receive_json_from(timeout=10)
    assert frame["errorCode"] == 400 and frame["param"] == "action"
    await socket.disconnect()
