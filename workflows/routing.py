"""Workflow routes served by Channels consumers, ahead of Django (see aiflowy/asgi.py).

Both path families: `/api/v1/workflow/external/…` (AIFlowy's documentation) and
`/api/v1/aiWorkflow/external/…` (what AIFlowy 1.x really served).
"""

from django.urls import path

from workflows.consumers import (
    ResumeConsumer,
    RunConsumer,
    RunningParamsConsumer,
    RunStatusConsumer,
    WorkflowEventsSocketConsumer,
)

http_urlpatterns = [
    route
    for family in ("workflow", "aiWorkflow")
    for route in (
        path(f"api/v1/{family}/external/getRunningParams", RunningParamsConsumer.as_asgi()),
        path(f"api/v1/{family}/external/run", RunConsumer.as_asgi()),
        path(f"api/v1/{family}/external/runStatus", RunStatusConsumer.as_asgi()),
        path(f"api/v1/{family}/external/resume", ResumeConsumer.as_asgi()),
    )
]

websocket_urlpatterns = [
    path("ws/v1/workflow/events", WorkflowEventsSocketConsumer.as_asgi()),
]
