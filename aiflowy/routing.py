"""Every consumer route of the project, in one list per protocol."""

from chat.routing import http_urlpatterns as chat_http

http_urlpatterns = [*chat_http]
websocket_urlpatterns: list = []
