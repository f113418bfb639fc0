"""HTTP routes served by Channels consumers, ahead of Django (see aiflowy/asgi.py)."""

from django.urls import path

from chat.consumers import (
    BotChatSocketConsumer,
    ChatCompletionsConsumer,
    ExternalChatConsumer,
    ModelsConsumer,
)

# OpenAI SDKs are configured with a base URL ending in `/v1`; FastGPT-style clients use
# `/api/v1`. Both prefixes serve the same consumers.
http_urlpatterns = [
    path("api/v1/aiBot/externalChat", ExternalChatConsumer.as_asgi()),
    path("v1/chat/completions", ChatCompletionsConsumer.as_asgi()),
    path("api/v1/chat/completions", ChatCompletionsConsumer.as_asgi()),
    # FastGPT's base URL is `…/api`; its SDK users append `/chat/completions` to it.
    path("api/chat/completions", ChatCompletionsConsumer.as_asgi()),
    path("v1/models", ModelsConsumer.as_asgi()),
    path("api/v1/models", ModelsConsumer.as_asgi()),
    path("v1/models/<str:model>", ModelsConsumer.as_asgi()),
    path("api/v1/models/<str:model>", ModelsConsumer.as_asgi()),
]

websocket_urlpatterns = [
    path("ws/v1/aiBot/chat", BotChatSocketConsumer.as_asgi()),
]
