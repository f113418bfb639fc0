"""Every consumer route of the project, in one list per protocol (the composition root: it imports
the apps; nothing imports it but `config/asgi.py`)."""

from chat.routing import http_urlpatterns as chat_http
from chat.routing import websocket_urlpatterns as chat_websocket
from knowledge.routing import http_urlpatterns as knowledge_http
from workflows.routing import http_urlpatterns as workflow_http

http_urlpatterns = [*chat_http, *workflow_http, *knowledge_http]
websocket_urlpatterns = [*chat_websocket]
