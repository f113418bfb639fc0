"""HTTP routes served by Channels consumers, ahead of Django (see aiflowy/asgi.py)."""

from django.urls import path

from chat.consumers import ExternalChatConsumer

http_urlpatterns = [
    path("api/v1/aiBot/externalChat", ExternalChatConsumer.as_asgi()),
]
