from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from config.openapi import docs_view, redoc_script_view, schema_view

urlpatterns = [
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    path("api/v1/chat/", include("chat.urls")),
    path("chat/", include("shares.urls")),
    path("api/schema/", schema_view, name="openapi-schema"),
    path("api/docs/", docs_view, name="openapi-docs"),
    path("api/docs/redoc.standalone.js", redoc_script_view),
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
]
