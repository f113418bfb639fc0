"""Knowledge-base routes served by Channels consumers, ahead of Django (see config/asgi.py).
Each endpoint on FastGPT's current path and its older one."""

from django.urls import path

from knowledge.consumers import CreateTrainingBillConsumer, PushDataConsumer, SearchTestConsumer

http_urlpatterns = [
    path("api/core/dataset/data/pushData", PushDataConsumer.as_asgi()),
    path("api/openapi/kb/pushData", PushDataConsumer.as_asgi()),
    path("api/core/dataset/searchTest", SearchTestConsumer.as_asgi()),
    path("api/openapi/kb/searchTest", SearchTestConsumer.as_asgi()),
    path("api/support/wallet/bill/createTrainingBill", CreateTrainingBillConsumer.as_asgi()),
    path("api/common/bill/createTrainingBill", CreateTrainingBillConsumer.as_asgi()),
]
