"""History API for external callers (DRF, behind Django's middleware; mounted at
`/api/v1/chat/`). The chat endpoints themselves are Channels consumers: see `chat/routing.py`."""

from django.urls import path

from chat.apis import ChatHistoriesApi, ChatRecordsApi

urlpatterns = [
    path("histories", ChatHistoriesApi.as_view(), name="chat-histories"),
    path("records", ChatRecordsApi.as_view(), name="chat-records"),
]
