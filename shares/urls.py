from django.urls import path

from shares import views

app_name = "shares"

urlpatterns = [
    path("share", views.share_page, name="share"),
    path("playground/<int:bot_id>", views.playground_page_view, name="playground"),
    path("page/<str:name>", views.page_asset, name="asset"),
]
