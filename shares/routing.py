"""The chat page's endpoints, served by consumers ahead of Django (see config/asgi.py)."""

from django.urls import path

from shares.consumers import (
    PlaygroundAnswerConsumer,
    PlaygroundMessagesConsumer,
    PlaygroundOpenConsumer,
    ShareAnswerConsumer,
    ShareMessagesConsumer,
    ShareOpenConsumer,
)

http_urlpatterns = [
    path("api/chat-page/share/open", ShareOpenConsumer.as_asgi()),
    path("api/chat-page/share/messages", ShareMessagesConsumer.as_asgi()),
    path("api/chat-page/share/answer", ShareAnswerConsumer.as_asgi()),
    path("api/chat-page/playground/open", PlaygroundOpenConsumer.as_asgi()),
    path("api/chat-page/playground/messages", PlaygroundMessagesConsumer.as_asgi()),
    path("api/chat-page/playground/answer", PlaygroundAnswerConsumer.as_asgi()),
]
