"""The provider's API key is write-only in the admin."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from bots.models import LlmProvider


@pytest.fixture
def admin_client(db) -> Client:
    client = Client()
    client.force_login(get_user_model().objects.create_superuser("root", password="pw"))
    return client


def _form(provider: LlmProvider, **changes) -> dict:
    data = {
        "name": provider.name,
        "kind": provider.kind,
        "base_url": provider.base_url,
        "api_key": "",
        "default_model": provider.default_model,
        "timeout_seconds": str(provider.timeout_seconds),
        "input_price_per_1k": str(provider.input_price_per_1k),
        "output_price_per_1k": str(provider.output_price_per_1k),
    }
    return {**data, **changes}


def test_the_provider_key_is_never_rendered_back(admin_client, provider):
    page = admin_client.get(f"/admin/bots/llmprovider/{provider.pk}/change/").content.decode()
    assert "sk-provider-secret" not in page
    listing = admin_client.get("/admin/bots/llmprovider/").content.decode()
    assert "sk-provider-secret" not in listing


def test_an_empty_key_field_keeps_the_key_and_a_new_value_replaces_it(admin_client, provider):
    url = f"/admin/bots/llmprovider/{provider.pk}/change/"
    admin_client.post(url, _form(provider, default_model="other"))
    provider.refresh_from_db()
    assert provider.api_key == "sk-provider-secret"
    assert provider.default_model == "other"
    admin_client.post(url, _form(provider, api_key="sk-new"))
    provider.refresh_from_db()
    assert provider.api_key == "sk-new"
