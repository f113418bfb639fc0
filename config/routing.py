"""Every consumer route of the project, in one list per protocol (the composition root: it imports
the apps; nothing imports it but `config/asgi.py`)."""

from django.urls import path

from aiflowy.health import HealthConsumer, MetricsConsumer, ReadyConsumer
from chat.routing import http_urlpatterns as chat_http
from chat.routing import websocket_urlpatterns as chat_websocket
from knowledge.routing import http_urlpatterns as knowledge_http
from shares.routing import http_urlpatterns as share_http
from workflows.routing import http_urlpatterns as workflow_http
from workflows.routing import websocket_urlpatterns as workflow_websocket

operations_http = [
    path("healthz", HealthConsumer.as_asgi()),
    path("readyz", ReadyConsumer.as_asgi()),
    path("metrics", MetricsConsumer.as_asgi()),
]
http_urlpatterns = [*chat_http, *workflow_http, *share_http, *knowledge_http, *operations_http]
websocket_urlpatterns = [*chat_websocket, *workflow_websocket]
